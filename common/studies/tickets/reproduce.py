"""`python reproduce.py --study tickets`: IMP and ticket re-training for every pruning objective, then the
report (common.studies.per_objective)."""
from __future__ import annotations

from common.studies.per_objective import reproduce
from common.studies.tickets import run
from common.studies.tickets.config import OBJECTIVES, STAGES


def main(argv=None):
    return reproduce("tickets", run.main, OBJECTIVES, STAGES, ("report",), argv)


def plan(argv=None):
    from common.studies.per_objective import plan as per_objective_plan

    return per_objective_plan("tickets", run.main, OBJECTIVES, STAGES, ("report",), argv)
