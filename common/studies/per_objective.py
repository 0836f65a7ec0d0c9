"""What the studies whose entry point runs one objective at a time share (tickets: studies/tickets.py,
three_regime: studies/three_regime.py): the entry point's typed recipe and run with their presets and rules
(`Entry`), and reproduce.py's plan over several objectives (`Plan`), which runs every per-objective stage for each
objective and the report stages once."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

from common.cli import check_device, config_flags, parse_flags
from common.config import check_fields, help_field
from common.errors import UsageError
from common.launch import command_line
from common.recipe import flag


@dataclass(frozen=True)
class Entry:
    """A study's entry point for one objective: its typed recipe (`recipe`, with an `objective` field) and run
    (`run`, a JobConfig with `stages`), their presets and rules."""

    name: str  # the study: its entry point is studies/<name>.py
    doc: str
    recipe: type
    run: type
    presets: dict[str, dict]  # preset -> recipe values
    run_presets: dict[str, dict]  # preset -> run values: the populations the preset makes
    rules: dict  # recipe field -> (test, need)
    run_rules: dict  # run field -> (test, need)
    preset_config: Callable[..., Any]  # (preset, **fields) -> the recipe, its dataset defaults resolved
    stages: tuple[str, ...]  # in order
    check: Callable[[Any, Any], None] = lambda cfg, run: None  # what ties a recipe to a run (one objective's)
    last: tuple[str, ...] = ("objective", "stages")  # the flags its printed commands end with, in this order

    @property
    def script(self) -> str:
        return f"studies/{self.name}.py"

    def shown(self) -> dict[str, dict]:
        """{preset: {field: value}} of the recipe and the run, as --help shows each flag's default."""
        return {name: {**self.presets[name], **self.run_presets.get(name, {})} for name in self.presets}

    def preset_run(self, preset: str, **given):
        return replace(self.run(), **{**self.run_presets.get(preset, {}), "preset": preset, **given})

    def resolve(self, recipe: dict, job: dict, default_preset: str = "paper") -> tuple[Any, Any]:
        """The checked recipe and run of the flags given (each over its preset's values)."""
        run = self.preset_run(**{"preset": default_preset, **job})
        if run.stages == ("all",):
            run = replace(run, stages=self.stages)
        config = self.preset_config(run.preset, **recipe)
        check_fields(config, self.rules)
        check_fields(run, self.run_rules)
        check_device(run.cuda_device)
        self.check(config, run)
        return config, run

    def parse(self, argv) -> tuple[Any, Any]:
        """studies/<name>.py's flags -> (recipe, run)."""
        recipe, job = parse_flags(f"{self.name}.py", self.doc, argv, self.recipe, self.run, presets=self.shown())
        return self.resolve(recipe, job)

    def argv(self, config, run) -> list[str]:
        """The flags that ask for `config` and `run` (parse reads them back): the preset, the fields that differ
        from it, then those of `last` (an empty list left out: it is their default)."""
        recipe = config_flags(config, self.preset_config(run.preset), skip=self.last)
        job = config_flags(run, self.preset_run(run.preset), skip=("preset", *self.last))
        values = [(name, getattr(config if hasattr(config, name) else run, name)) for name in self.last]
        tail = [part for name, value in values if value != () for part in flag(name, value)]
        return ["--preset", run.preset, *recipe, *job, *tail]

    def command(self, config, run) -> str:
        return command_line(self.script, self.argv(config, run))


@dataclass(frozen=True)
class Objectives:
    """reproduce.py's own flag for such a study: which objectives it runs."""

    objectives: tuple = help_field((), "the objectives to run, each through every stage but the report ones; "
                                        "none = all", nargs="*", item=str)


@dataclass(frozen=True)
class Plan:
    """One reproduce.py run of such a study: the recipe and run given (the objective aside), the objectives."""

    config: Any
    run: Any
    objectives: tuple[str, ...]
    extra: dict = field(default_factory=dict)  # what else the study's reproduce.py was told (layerwise tickets)

    def of(self, objective: str, stages: tuple[str, ...], **fields_):
        """(recipe, run) of one objective's part: these stages, and the given recipe or run fields."""
        recipe = {k: v for k, v in fields_.items() if hasattr(self.config, k)}
        job = {k: v for k, v in fields_.items() if not hasattr(self.config, k)}
        return replace(self.config, objective=objective, **recipe), replace(self.run, stages=stages, **job)


def resolve_plan(entry: Entry, given: tuple[dict, dict, dict], offered: tuple[str, ...]) -> Plan:
    """The checked plan of reproduce.py's flags for such a study (the preset defaults to demo here): every
    objective's recipe and run checked as its entry point checks them."""
    recipe, job, mine = given
    objectives = tuple(mine.get("objectives", ())) or offered
    unknown = [o for o in objectives if o not in offered]
    if unknown:
        raise UsageError(f"--objectives {','.join(objectives)}: choose among {', '.join(offered)}")
    config, run = entry.resolve(recipe, job, default_preset="demo")
    for objective in objectives:
        entry.check(replace(config, objective=objective), run)
    return Plan(config, run, objectives)
