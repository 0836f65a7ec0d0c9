"""`reproduce.py --study <name>` for a study whose entry point runs one objective at a time (tickets,
three_regime): every stage but the last ones for each objective of `--objectives`, then the report stages once.
Every other flag goes to the study's entry point; the preset defaults to demo here."""
from __future__ import annotations

import logging
import time
from typing import Callable

from dataclasses import replace

from common.cli import OneLineParser, UsageError, check_device, parse_flags
from common.config import check_fields

log = logging.getLogger("prune")


def reproduce(study: str, main: Callable, objectives: tuple, stages: tuple, report_stages: tuple, argv=None):
    asked, wanted, rest = _split(study, main, objectives, stages, argv)
    started, models = time.time(), []
    per_objective = [s for s in wanted if s not in report_stages]
    if per_objective:
        for objective in asked:
            models += main(rest + ["--objective", objective, "--stages", *per_objective])
    once = [s for s in wanted if s in report_stages]
    if once:
        main(rest + ["--objective", asked[0], "--stages", *once])
    log.info("%s study finished in %.1fs (%d models trained)", study, time.time() - started, len(models))
    return models


def plan(study: str, main: Callable, objectives: tuple, stages: tuple, report_stages: tuple, argv=None,
         split: Callable | None = None):
    """The same work as stages of tasks for a launcher (common.launch): every stage one task per objective and
    part (`split(stage, argv) -> [(label, extra flags)]`: the study's populations, e.g. chunks of seeds or one
    temperature point; default one part), the report stages once. -> (stages, output paths)."""
    from common.launch import Stage, Task, command_line
    from common.paths import Paths

    asked, wanted, rest = _split(study, main, objectives, stages, argv)
    if "--help" in rest:
        return [], Paths()
    script = f"studies/{study}.py"
    planned = []
    for stage in wanted:
        objectives_here = asked[:1] if stage in report_stages else asked
        tasks = []
        for objective in objectives_here:
            task_argv = rest + ["--objective", objective, "--stages", stage]
            label = stage if stage in report_stages else f"{objective} {stage}"
            parts = [("", [])] if split is None or stage in report_stages else split(stage, task_argv)
            for part, extra in parts:
                tasks.append(Task(f"{label}{part}", main, (task_argv + extra,), command_line(script, task_argv + extra)))
        planned.append(Stage(stage, tasks))
    root = OneLineParser(add_help=False)
    root.add_argument("--output_root", default="")
    return planned, Paths.at(root.parse_known_args(rest)[0].output_root)


def _split(study: str, main: Callable, objectives: tuple, stages: tuple, argv):
    """(objectives asked, stages asked, the flags for the study's entry point), each checked."""
    parser = OneLineParser(prog=f"reproduce.py --study {study}", add_help=False)
    parser.add_argument("--objectives", default=",".join(objectives))
    parser.add_argument("--stages", default=",".join(stages))
    known, rest = parser.parse_known_args(argv or [])
    if any(flag in rest for flag in ("-h", "--help")):
        print(f"reproduce.py --study {study} [--objectives {','.join(objectives)}] [--stages {','.join(stages)}] "
              f"[studies/{study}.py flags]\n")
        main(["--help"])
        return [], [], ["--help"]
    asked = [o for o in known.objectives.split(",") if o]
    if not asked or any(o not in objectives for o in asked):
        raise UsageError(f"--objectives {known.objectives}: choose among {', '.join(objectives)}")
    wanted = list(stages) if known.stages == "all" else [s for s in known.stages.split(",") if s]
    if not wanted or any(s not in stages for s in wanted):
        raise UsageError(f"--stages {known.stages}: choose among {', '.join(stages)}")
    if "--objective" in rest:
        raise UsageError(f"--objective: reproduce.py runs every objective of --objectives; for one, use "
                         f"studies/{study}.py --objective …")
    if "--preset" not in rest:
        rest = ["--preset", "demo", *rest]
    return asked, wanted, rest


def parse_study(prog: str, doc: str, argv, config_class, run_class, presets: dict, run_presets: dict,
                preset_config: Callable, rules: dict, run_rules: dict, stages: tuple):
    """A study entry point's flags: the recipe (a config_class from its preset, flags over it) and the run (a
    run_class from its preset's run values, flags over them; `--stages all` is every stage), each checked.
    -> (config, run)."""
    shown = {name: {**presets[name], **run_presets[name]} for name in presets}
    recipe, job = parse_flags(prog, doc, argv, config_class, run_class, presets=shown)
    preset = job.get("preset", "paper")
    config = preset_config(preset, **recipe)
    run = replace(run_class(), **{**run_presets.get(preset, {}), **job})
    if run.stages == ("all",):
        run = replace(run, stages=stages)
    check_fields(config, rules)
    check_fields(run, run_rules)
    check_device(run.cuda_device)
    return config, run
