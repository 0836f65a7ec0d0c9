"""Training objectives as ONE registry, the only place that names them: each entry carries every fact the toolkit
needs about an objective. Adding one is a class in its own file here and one entry in `OBJECTIVES` (docs/architecture.md,
"Extending the toolkit").

An objective a network is trained with (`phase_only=False`) names models: `ModelSpec.method` is its key, `folder`
its folder and display name (pies/cifar10/SupCon), `heads` what the network carries besides the label classifier,
`parts` the files a finished model is saved as. `labels` says what of the labels it sees and `contrastive` whether
it compares two views under a temperature (which of a recipe's fields shape its models: common.recipe)."""
from __future__ import annotations

from dataclasses import dataclass

from common.engine.objectives.base import Objective, at_least_fp32, cross_entropy
from common.engine.objectives.contrastive import SimCLR, SupCon
from common.engine.objectives.exemplar import Exemplar
from common.engine.objectives.labelled import S4L, FewLabels
from common.engine.objectives.npid import NPID
from common.engine.objectives.rotation import ROTATIONS, RotNet
from common.engine.objectives.supervised import CrossEntropy, LinearProbe

LABELS = ("all", "fraction", "none")


@dataclass(frozen=True)
class Heads:
    """The heads an objective trains on top of the encoder, besides the label classifier (which every network has,
    so a ticket re-trained on labels and a linear probe find one)."""

    projection: str | None = None  # 'mlp' (SupCon, SimCLR: Linear-ReLU-Linear) | 'linear' (NPID, Exemplar) | None
    rotation: int = 0  # classes of a rotation classifier (RotNet, S4L: the four rotations); 0 = none


@dataclass(frozen=True)
class ObjectiveInfo:
    loss: type[Objective]  # the engine's loss: what a phase minimises
    folder: str = ""  # the folder and display name of its models (the authors' 'SupCon', 'supervised')
    heads: Heads = Heads()
    parts: tuple[str, ...] = ("encoder", "classifier")  # a finished model's files (classifier last: it marks it done)
    labels: str = "all"  # what of the labels it sees: one of LABELS
    classifier: bool = False  # it trains the label classifier with the encoder (so the network classifies)
    contrastive: bool = False  # two views compared under a temperature (SupCon, SimCLR)
    phase_only: bool = False  # a loss of one phase, never a network's objective (the linear probe)

    @property
    def embedding(self) -> bool:
        """Its network has a projection head (an embedding the loss reads)."""
        return self.heads.projection is not None


OBJECTIVES: dict[str, ObjectiveInfo] = {
    # cross-entropy on labels over the whole network: one file, as the authors' supervised models
    "supervised": ObjectiveInfo(CrossEntropy, "supervised", parts=("model",), classifier=True),
    # the linear classifier on a frozen encoder (the second phase of SupCon and of the pretexts' evaluation)
    "linear": ObjectiveInfo(LinearProbe, phase_only=True),
    "supcon": ObjectiveInfo(SupCon, "SupCon", Heads("mlp"), contrastive=True),
    # Caron et al. 2020's pretexts. NPID's embedding is Wu et al.'s linear layer to 128-d; Exemplar (triplet) the same
    "rotnet": ObjectiveInfo(RotNet, "RotNet", Heads(rotation=ROTATIONS), labels="none"),
    "exemplar": ObjectiveInfo(Exemplar, "Exemplar", Heads("linear"), labels="none"),
    "simclr": ObjectiveInfo(SimCLR, "SimCLR", Heads("mlp"), labels="none", contrastive=True),
    "npid": ObjectiveInfo(NPID, "NPID", Heads("linear"), labels="none"),
    "s4l": ObjectiveInfo(S4L, "S4L", Heads(rotation=ROTATIONS), labels="fraction", classifier=True),
    "few_labels": ObjectiveInfo(FewLabels, "FewLabels", labels="fraction", classifier=True),
}
# what a network is trained with: the values ModelSpec.method takes
METHODS: dict[str, ObjectiveInfo] = {name: o for name, o in OBJECTIVES.items() if not o.phase_only}


def make_objective(name: str, **hparams) -> Objective:
    return OBJECTIVES[name].loss(**hparams)


def display_name(method: str) -> str:
    """How logs, titles and folders name an objective: its folder name ('SupCon')."""
    return OBJECTIVES[method].folder


__all__ = ["LABELS", "METHODS", "OBJECTIVES", "Heads", "Objective", "ObjectiveInfo", "at_least_fp32",
           "cross_entropy", "display_name", "make_objective"]
