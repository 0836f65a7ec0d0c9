"""`python reproduce.py --study three_regime`: the grid of every objective (train, prune, retrain, connectivity,
cka), then the phase plots (common.studies.per_objective)."""
from __future__ import annotations

from common.studies.per_objective import reproduce
from common.studies.three_regime import run
from common.studies.three_regime.config import OBJECTIVES, STAGES


def main(argv=None):
    return reproduce("three_regime", run.main, OBJECTIVES, STAGES, ("plot",), argv)


def plan(argv=None):
    from common.studies.per_objective import plan as per_objective_plan

    return per_objective_plan("three_regime", run.main, OBJECTIVES, STAGES, ("plot",), argv, temperature_points)


def temperature_points(stage: str, argv: list[str]) -> list[tuple[str, list[str]]]:
    """One task per temperature point, except where one run serves them all (the epochs knob's dense run)."""
    cfg, grid_run = run.parse(argv)
    if stage == "train" and cfg.knob == "epochs":
        return [("", [])]
    temperatures = [t for t in cfg.temperatures() if not grid_run.only_temperatures or t in grid_run.only_temperatures]
    return [(f" temperature {t:g}", ["--only_temperatures", f"{t:g}"]) for t in temperatures]
