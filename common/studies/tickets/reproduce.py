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

    return per_objective_plan("tickets", run.main, OBJECTIVES, STAGES, ("report",), argv, seed_groups)


def seed_groups(stage: str, argv: list[str]) -> list[tuple[str, list[str]]]:
    """One task per group of --population_size seeds (8 when it is 0): a group's IMP levels run in order."""
    _, tickets_run = run.parse(argv)
    size = tickets_run.population_size or 8
    firsts = range(tickets_run.index_start, tickets_run.index_end + 1, size)
    return [(f" seeds {a}-{min(a + size - 1, tickets_run.index_end)}",
             ["--index_start", str(a), "--index_end", str(min(a + size - 1, tickets_run.index_end))]) for a in firsts]
