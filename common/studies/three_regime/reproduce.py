"""`python reproduce.py --study three_regime`: the grid of every objective (train, prune, retrain, connectivity,
cka), then the phase plots, through the study contract (common.study)."""
from __future__ import annotations

import logging
import time

from common.launch import Stage, Task
from common.paths import Paths
from common.study import Study
from common.studies.per_objective import Objectives, Plan, resolve_plan
from common.studies.three_regime.config import OBJECTIVES, PRESET_OBJECTIVES, STAGES, RegimeConfig, RegimeRun
from common.studies.three_regime.knobs import KNOBS
from common.studies.three_regime.commands import ENTRY
from common.studies.three_regime.run import STAGES_RUN, run_objective

log = logging.getLogger("prune")
REPORT_STAGES = ("plot",)  # once, over every objective on disk
STUDY_PRESET = "demo"  # what reproduce.py runs without --preset (STUDY.preset)


# reproduce.py's own defaults under each preset (--help shows them; resolve fills what was not given)
OPTION_PRESETS = {name: dict(objectives=objectives) for name, objectives in PRESET_OBJECTIVES.items()}


def resolve(given: tuple[dict, dict, dict]) -> Plan:
    recipe, job, options = given
    options = {**OPTION_PRESETS.get(job.get("preset", STUDY_PRESET), {}), **options}
    return resolve_plan(ENTRY, (recipe, job, options), OBJECTIVES)


def run(plan: Plan) -> list[dict]:
    """Here: every objective's grid stages, then the phase plots once."""
    started, models = time.time(), []
    per_objective = tuple(s for s in plan.run.stages if s not in REPORT_STAGES)
    if per_objective:
        for objective in plan.objectives:
            models += run_objective(*plan.of(objective, per_objective))
    once = tuple(s for s in plan.run.stages if s in REPORT_STAGES)
    if once:
        run_objective(*plan.of(plan.objectives[0], once))
    log.info("three_regime study finished in %.1fs (%d models trained)", time.time() - started, len(models))
    return models


def points(plan: Plan, objective: str, stage: str) -> list[tuple[str, dict]]:
    """One task per temperature point (label, run fields), except where one run serves them all (the dense run of
    a knob whose temperatures are one run's checkpoints)."""
    config = plan.of(objective, (stage,))[0]
    if stage == "train" and KNOBS[config.knob].one_run:
        return [("", {})]
    asked = plan.run.only_temperatures
    return [(f" temperature {t:g}", dict(only_temperatures=(float(t),))) for t in config.temperatures()
            if not asked or t in asked]


def _task(label: str, cfg: RegimeConfig, run_config: RegimeRun) -> Task:
    return Task(label, run_objective, (cfg, run_config), ENTRY.command(cfg, run_config))


def tasks(plan: Plan) -> list[Stage]:
    stages = []
    for stage in (s for s in STAGES if s in plan.run.stages):
        if stage in REPORT_STAGES:
            stages.append(Stage(stage, [_task(stage, *plan.of(plan.objectives[0], (stage,)))]))
            continue
        stages.append(Stage(stage, [_task(f"{objective} {stage}{label}", *plan.of(objective, (stage,), **fields))
                                    for objective in plan.objectives for label, fields in points(plan, objective,
                                                                                                 stage)]))
    return stages


STUDY = Study(
    name="three_regime",
    doc="Zhou, Yang, Chang & Mahoney 2023's three-regime model of pruning: a grid of dense-training temperatures "
        "(--knob epochs, batch_size or sam_rho) x loads (density after one-shot pruning), each cell re-trained with "
        "several seeds and compared through linear mode connectivity (BatchNorm reset along the path) and CKA, for "
        "every objective of --objectives, then the phase plots. One objective at a time: studies/three_regime.py "
        "--objective O.",
    prefix="three_regime",
    configs=(RegimeConfig, RegimeRun, Objectives),
    presets={name: {**values, **ENTRY.run_presets.get(name, {}), **OPTION_PRESETS.get(name, {})}
             for name, values in ENTRY.presets.items()},
    resolve=resolve,
    stages={name: stage for name, (stage, _) in STAGES_RUN.items()},
    run=run,
    tasks=tasks,
    paths=lambda plan: Paths.at(plan.run.output_root),
    skip=("objective",),
    preset=STUDY_PRESET,
)
