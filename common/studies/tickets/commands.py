"""The tickets study's entry point as typed configs (`ENTRY`: studies/tickets.py's recipe, run, presets and rules)
and the command that makes one of its models again (`retrain_command`, what the core's messages print)."""
from __future__ import annotations

from dataclasses import replace

from common.errors import UsageError
from common.paths import Paths
from common.spec import ModelSpec
from common.studies.per_objective import Entry
from common.studies.tickets.config import (PRESETS, RULES, RUN_PRESETS, RUN_RULES, STAGES, TicketsConfig, TicketsRun,
                                           objective_of, preset_config)

DOC = "Caron et al. 2020's winning tickets for one pruning objective: its stages imp, retrain, transfer, report."


def check(cfg: TicketsConfig, run: TicketsRun) -> None:
    """What ties one objective's recipe to its run, checked before anything is read or written."""
    if cfg.optimizer == "sam" and cfg.objective == "npid":
        raise UsageError("--optimizer sam --objective npid: SAM's second pass would draw NPID's noise and update its "
                         "memory bank twice per step; use --optimizer sgd or adam")
    if run.index_start > run.index_end:
        raise UsageError(f"--index_start {run.index_start} --index_end {run.index_end}: need start <= end")


ENTRY = Entry("tickets", DOC, TicketsConfig, TicketsRun, PRESETS, RUN_PRESETS, RULES, RUN_RULES, preset_config,
              STAGES, check, last=("objective", "stages", "index_start", "index_end"))


def retrain_command(spec: ModelSpec, recipe: dict | None, paths: Paths, seeds: list[int] | None = None) -> str:
    """studies/tickets.py for the stage that makes `spec` (its objective, level and seed, the recipe of its
    population) under the preset of its dataset: common.zoo's `retrain` for this study."""
    knobs = dict(spec.knobs)
    level = int(knobs.get("level", 0))
    if "source" in knobs:  # a finetuning on the other dataset
        stage, dataset = "transfer", knobs["source"].replace("-", "_")
    else:
        stage, dataset = ("retrain" if "init" in knobs else "imp"), spec.dataset
    objective = objective_of(knobs["objective"]) if "objective" in knobs else spec.method
    preset = next((p for p in PRESETS if preset_config(p).dataset == dataset), "paper")
    names = {f for f in TicketsConfig.__dataclass_fields__} - {"objective", "dataset", "arch"}
    given = {k: tuple(v) if isinstance(v, list) else v for k, v in (recipe or {}).items() if k in names}
    cfg = preset_config(preset, **given, objective=objective, dataset=dataset, arch=spec.arch,
                        rewind=knobs.get("rewind", preset_config(preset).rewind),
                        prune_first_n_layers=int(knobs.get("layers", 0)))
    seeds = seeds or [spec.seed]
    run = ENTRY.preset_run(preset, stages=(stage,), index_start=min(seeds), index_end=max(seeds),
                           levels=max(level, 0), output_root=paths.output_root)
    if stage == "transfer":
        run = replace(run, probe_dataset=spec.dataset, finetune_objectives=(objective,), transfer_levels=(level,))
    return ENTRY.command(cfg, run)
