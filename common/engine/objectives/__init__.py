"""Training objectives as a registry: a phase names one (`make_objective`). Adding one is a class in its own file
here and one entry in `OBJECTIVES`."""
from __future__ import annotations

from common.engine.objectives.base import Objective, at_least_fp32, cross_entropy
from common.engine.objectives.contrastive import SimCLR, SupCon
from common.engine.objectives.exemplar import Exemplar
from common.engine.objectives.labelled import S4L, FewLabels
from common.engine.objectives.npid import NPID
from common.engine.objectives.rotation import RotNet
from common.engine.objectives.supervised import CrossEntropy, LinearProbe

OBJECTIVES = {"ce": CrossEntropy, "linear": LinearProbe, "supcon": SupCon,
              # Caron et al. 2020's pretexts
              "rotnet": RotNet, "exemplar": Exemplar, "simclr": SimCLR, "npid": NPID, "s4l": S4L,
              "few_labels": FewLabels}


def make_objective(name: str, **hparams) -> Objective:
    return OBJECTIVES[name](**hparams)


__all__ = ["OBJECTIVES", "Objective", "at_least_fp32", "cross_entropy", "make_objective"]
