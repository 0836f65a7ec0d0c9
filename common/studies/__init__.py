"""One package per study (its configuration, its stages, its report) and the registry of studies: one line each.
A study hands the toolkit a common.study.Study; `reproduce.py --study NAME` runs it."""
from common.studies.corti2022.reproduce import STUDY as CORTI2022
from common.studies.three_regime.reproduce import STUDY as THREE_REGIME
from common.studies.tickets.reproduce import STUDY as TICKETS

STUDIES = {study.name: study for study in (CORTI2022, TICKETS, THREE_REGIME)}
