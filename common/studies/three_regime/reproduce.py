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

    return per_objective_plan("three_regime", run.main, OBJECTIVES, STAGES, ("plot",), argv)
