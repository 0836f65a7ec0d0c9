"""`python reproduce.py --study tickets`: IMP and ticket re-training for every pruning objective, then the
report. Every other flag goes to studies/tickets.py (its --help lists them); the preset defaults to demo here."""
from __future__ import annotations

import logging
import time

from common.cli import OneLineParser, UsageError
from common.studies.tickets import run
from common.studies.tickets.config import OBJECTIVES

log = logging.getLogger("prune")


def main(argv=None):
    parser = OneLineParser(prog="reproduce.py --study tickets", add_help=False)
    parser.add_argument("--objectives", default=",".join(OBJECTIVES))
    parser.add_argument("--stages", default=None)
    known, rest = parser.parse_known_args(argv or [])
    if any(flag in rest for flag in ("-h", "--help")):
        print("reproduce.py --study tickets [--objectives supervised,supcon] [studies/tickets.py flags]\n")
        return run.main(["--help"])
    objectives = [o for o in known.objectives.split(",") if o]
    unknown = [o for o in objectives if o not in OBJECTIVES]
    if unknown or not objectives:
        raise UsageError(f"--objectives {known.objectives}: choose among {', '.join(OBJECTIVES)}")
    if "--objective" in rest:
        raise UsageError("--objective: reproduce.py runs every objective of --objectives; for one, use "
                         "studies/tickets.py --objective …")
    if "--preset" not in rest:
        rest = ["--preset", "demo", *rest]
    stages = (known.stages or "imp,retrain,report").split(",")
    started, models = time.time(), []
    training = [s for s in stages if s != "report"]
    if training:
        for objective in objectives:
            models += run.main(rest + ["--objective", objective, "--stages", *training])
    if "report" in stages:
        run.main(rest + ["--objective", objectives[0], "--stages", "report"])
    log.info("tickets study finished in %.1fs (%d models trained)", time.time() - started, len(models))
    return models
