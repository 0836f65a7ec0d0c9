"""The three-regime study's entry point as typed configs (`ENTRY`: studies/three_regime.py's recipe, run, presets
and rules) and the command that makes one of its models again (`retrain_command`, what the core's messages print).

The dense runs' seeds are --index_start..--index_end, as in every script; the re-trainings of each pruned network
take a list (--retrain_seeds): the grid compares pairs of them, and the authors name them (1, 2, 3)."""
from __future__ import annotations

from dataclasses import replace

from common.errors import UsageError
from common.paths import Paths
from common.spec import ModelSpec
from common.studies.per_objective import Entry
from common.studies.three_regime.config import (PRESETS, RULES, RUN_PRESETS, RUN_RULES, STAGES, RegimeConfig,
                                                RegimeRun, preset_config)
from common.studies.three_regime.knobs import KNOBS

DOC = ("Zhou et al. 2023's three-regime phase diagram for one objective and one temperature knob: its stages train, "
       "prune, retrain, connectivity, cka, plot.")


def check(cfg: RegimeConfig, run: RegimeRun) -> None:
    """The seeds make a range; --only_temperatures names temperatures of the grid (before anything is read or
    written)."""
    if run.index_start > run.index_end:
        raise UsageError(f"--index_start {run.index_start} --index_end {run.index_end}: need start <= end")
    off = [t for t in run.only_temperatures if t not in cfg.temperatures()]
    if off:
        raise UsageError(f"--only_temperatures {','.join(f'{t:g}' for t in off)}: not a temperature of this grid "
                         f"(--knob {cfg.knob}: {','.join(f'{t:g}' for t in cfg.temperatures())})")


ENTRY = Entry("three_regime", DOC, RegimeConfig, RegimeRun, PRESETS, RUN_PRESETS, RULES, RUN_RULES,
              preset_config, STAGES, check, last=("objective", "stages", "only_temperatures"))


def retrain_command(spec: ModelSpec, recipe: dict | None, paths: Paths) -> str:
    """studies/three_regime.py for the stage that makes `spec` (its objective, temperature point and seeds, the
    recipe of its population) under the preset of its dataset: common.zoo's `retrain` for this study."""
    knobs = dict(spec.knobs)
    knob = next(name for name, k in KNOBS.items() if k.tag == knobs["knob"])
    preset = next((p for p in PRESETS if preset_config(p).dataset == spec.dataset), "paper")
    names = set(RegimeConfig.__dataclass_fields__) - {"objective", "dataset", "arch", "knob"}
    given = {k: tuple(v) if isinstance(v, list) else v for k, v in (recipe or {}).items() if k in names}
    cfg = preset_config(preset, **given, objective=spec.method, dataset=spec.dataset, arch=spec.arch, knob=knob)
    run = ENTRY.preset_run(preset, output_root=paths.output_root)
    if "dense" in knobs:  # a re-trained network: its dense seed, and its retrain seed among the preset's
        stage, dense_seed = "retrain", int(knobs["dense"])
        run = replace(run, retrain_seeds=tuple(sorted({*run.retrain_seeds, spec.seed})))
    else:
        stage, dense_seed = ("train" if spec.pruning == "dense" else "prune"), spec.seed
    only = () if stage == "train" and KNOBS[knob].one_run else (float(knobs["temperature"]),)
    run = replace(run, stages=(stage,), index_start=dense_seed, index_end=dense_seed, only_temperatures=only)
    return ENTRY.command(cfg, run)
