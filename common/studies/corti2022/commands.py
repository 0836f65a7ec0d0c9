"""The commands that make Corti et al.'s populations, from typed configs: every "train it with …" the study prints
is built here, complete (the preset, the recipe fields that differ from it, read from the models already on disk,
the seeds and the output root), so that pasting it makes exactly the models that are missing; each parses back to
the configs it was printed from (tests/test_contract.py).

The registry of Corti et al.'s pruning names is here too: which stage makes a population and the fields that ask
for it."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

from common.cli import config_flags
from common.launch import command_line
from common.paths import Paths
from common.spec import ModelSpec
from common.studies.corti2022.config import (GMP_SCHEDULES, RunConfig, TrainConfig, preset_config, preset_run)
from common.studies.corti2022.finetune import (PRUNING_METHODS, FinetuneConfig, FinetuneRunConfig, preset_finetune,
                                               preset_finetune_run)

SCRIPT_PREFIX = {"supervised": "sup", "supcon": "clr"}  # the authors' paired scripts: sup_training.py, clr_…
METHODS = tuple(SCRIPT_PREFIX)


@dataclass(frozen=True)
class PruningName:
    """One way a population is pruned: which script makes it and the fields that ask for it there (its commands
    always name them)."""

    name: str
    made_by: str  # 'training' (dense, or GMP during training) | 'pruning_finetune' (one-shot pruning + finetuning)
    asks: tuple = ()  # ((field, value), ...) of the making script's config


PRUNINGS = {p.name: p for p in (
    PruningName("dense", "training"),
    *(PruningName(f"gmp_{s}", "training", (("gmp_schedule", s),)) for s in GMP_SCHEDULES),
    PruningName("gmp_custom", "training"),  # a window by steps: --begin_step, --end_step, --frequency
    *(PruningName(m, "pruning_finetune", (("pruning_method", m),)) for m in PRUNING_METHODS),  # one-shot criteria
)}
PRUNED = tuple(name for name in PRUNINGS if name != "dense")  # what an analysis compares with the dense population


def script(method: str, stage: str) -> str:
    """`sup_training.py`, `clr_pruning_finetune.py`, …"""
    return f"{SCRIPT_PREFIX[method]}_{stage}.py"


def preset_for(dataset: str) -> str:
    """The preset that trains on a dataset by default (digits: demo, fashion_mnist: study)."""
    return {"digits": "demo", "fashion_mnist": "study"}.get(dataset, "paper")


def _tail(names: tuple, config) -> list[str]:
    """The flags every command ends with (the seeds, the output root), in this order, where set."""
    out = []
    for name in names:
        value = getattr(config, name)
        if value != "":
            out += [f"--{name}", str(value)]
    return out


# ---- typed configs -> argv (parse_flags reads them back) ------------------------------------------------

def training_argv(method: str, cfg: TrainConfig, run: RunConfig, asks: tuple = ()) -> list[str]:
    """sup_training.py / clr_training.py's flags for `cfg` and `run`: the preset, the recipe fields that differ
    from it (and the pruning's own, `asks`), the sparsities, the run fields that differ, the seeds, the root."""
    recipe = config_flags(cfg, preset_config(method, run.preset), always=asks, method=method)
    job = config_flags(run, preset_run(run.preset), always=("pruning_percentages",),
                       skip=("preset", "index_start", "index_end", "output_root"))
    return ["--preset", run.preset, *recipe, *job, *_tail(("index_start", "index_end", "output_root"), run)]


def finetune_argv(method: str, cfg: FinetuneConfig, run: FinetuneRunConfig, asks: tuple = ()) -> list[str]:
    recipe = config_flags(cfg, preset_finetune(method, run.preset), always=asks, method=method)
    job = config_flags(run, preset_finetune_run(run.preset), always=("pruning_percentages",),
                       skip=("preset", "models_number", "output_root"))
    return ["--preset", run.preset, *recipe, *job, *_tail(("models_number", "output_root"), run)]


def training_command(method: str, cfg: TrainConfig, run: RunConfig, asks: tuple = ()) -> str:
    return command_line(script(method, "training"), training_argv(method, cfg, run, asks))


def finetune_command(method: str, cfg: FinetuneConfig, run: FinetuneRunConfig, asks: tuple = ()) -> str:
    return command_line(script(method, "pruning_finetune"), finetune_argv(method, cfg, run, asks))


# ---- the command that makes a population ----------------------------------------------------------------

def with_recipe(config, recipe: dict | None):
    """`config` with the fields a stored recipe sets (lists as tuples); the identity fields stay the config's."""
    names = {f.name for f in fields(config)} - {"method", "dataset", "arch"}
    given = {k: tuple(v) if isinstance(v, list) else v for k, v in (recipe or {}).items() if k in names}
    return replace(config, **given)


def population_command(method: str, pruning: str, sparsity: float, dataset: str, arch: str, seeds: list[int],
                       preset: str | None = None, recipe: dict | None = None, output_root: str = "") -> str:
    """The complete command that makes the models of `seeds` of one population: the preset (the dataset's own
    unless given), the recipe fields that differ from it (`recipe`: the population's, read from disk), the seeds
    and the output root. Reruns skip finished models, so it makes only the missing ones."""
    preset = preset or preset_for(dataset)
    made = PRUNINGS[pruning]
    asks = tuple(name for name, _ in made.asks)
    if made.made_by == "training":
        cfg = with_recipe(preset_config(method, preset, dataset=dataset, arch=arch), recipe)
        cfg = replace(cfg, **dict(made.asks))
        run = replace(preset_run(preset), index_start=min(seeds), index_end=max(seeds), output_root=output_root,
                      pruning_percentages=(sparsity,))
        return training_command(method, cfg, run, asks)
    cfg = with_recipe(preset_finetune(method, preset, dataset=dataset, arch=arch), recipe)
    cfg = replace(cfg, **dict(made.asks))
    run = replace(preset_finetune_run(preset), models_number=max(seeds) + 1, output_root=output_root,
                  pruning_percentages=(sparsity,))
    return finetune_command(method, cfg, run, asks)


def retrain_command(spec: ModelSpec, recipe: dict | None, paths: Paths) -> str:
    """The command that makes `spec` again with `recipe` (its population's, when known) under the preset of its
    dataset (reruns skip finished models, so it makes only this one): common.zoo's `retrain` for this study."""
    return population_command(spec.method, spec.pruning, spec.sparsity, spec.dataset, spec.arch, [spec.seed],
                              recipe=recipe, output_root=paths.output_root)
