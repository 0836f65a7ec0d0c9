"""Cross-entropy on labels: training a whole network, and the linear classifier on a frozen encoder."""
from __future__ import annotations

import torch

from common.engine.folding import folded
from common.engine.objectives.base import Objective, at_least_fp32, cross_entropy


class CrossEntropy(Objective):
    """Supervised training of the whole network (and finetuning after pruning)."""

    def losses(self, pop, batches, idx):
        labels = batches.labels(idx)
        x = batches.images(idx)
        pop.train()
        return cross_entropy(at_least_fp32(pop(x, "logits")), labels)


class LinearProbe(Objective):
    """The linear classifier on the frozen encoder: features in eval mode without gradients, as the authors'
    SupCon classifier stage (with BatchNorm folded into the convolutions: common.engine.folding)."""

    def losses(self, pop, batches, idx):
        labels = batches.labels(idx)
        x = batches.images(idx)
        with torch.no_grad():
            pop.eval()
            features = at_least_fp32(folded(pop, "features")(x, "features"))
        weight, bias = pop.params["classifier.weight"], pop.params["classifier.bias"]
        logits = torch.einsum("pbd,pcd->pbc", features, at_least_fp32(weight)) + at_least_fp32(bias)[:, None]
        return cross_entropy(logits, labels)
