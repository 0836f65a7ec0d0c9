"""Objectives that see labels for a fraction of the training set only: S4L's rotation variant (Zhai, Oliver,
Kolesnikov & Beyer 2019, "S4L: Self-Supervised Semi-Supervised Learning") and plain training on the labelled part,
as Caron et al. 2020 compare them."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from common.data.subsets import labelled_subset
from common.engine.objectives.base import Objective, at_least_fp32
from common.engine.objectives.rotation import rotation_loss, rotations


def masked_cross_entropy(logits: Tensor, labels: Tensor, labelled: Tensor) -> Tensor:
    """logits [P, B, C], labels [P, B], labelled [P, B] bool -> mean cross-entropy over the labelled examples per
    member [P] (0 where a batch has none)."""
    losses = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view(labels.shape)
    weight = labelled.to(losses.dtype)
    return (losses * weight).sum(1) / weight.sum(1).clamp(min=1)


class _Labelled(Objective):
    """The labelled mask of the training set (`labelled_subset`), built once at the first call."""

    reports_accuracy = False

    def __init__(self, label_fraction: float = 0.1, label_sampling: str = "per_class", label_seed: int = 0):
        self.label_fraction, self.label_sampling, self.label_seed = label_fraction, label_sampling, label_seed
        self.mask: Tensor | None = None

    def labelled(self, batches, idx: Tensor) -> Tensor:
        """idx [P, B] -> whether each image is labelled [P, B], on the training device."""
        if self.mask is None:
            self.mask = labelled_subset(batches.data.train_labels, self.label_fraction, self.label_sampling,
                                        self.label_seed).to(batches.device)
        return self.mask[idx.to(self.mask.device)]


class S4L(_Labelled):
    """Zhai et al.'s S4L-Rotation: the RotNet loss on every image of the batch (its four rotations, the rotation
    head) plus label_weight x the cross-entropy of the label classifier on the 0-degree copy of the batch's
    labelled images only (masked mean; 0 when the batch has none). One encoder pass ('rotation_and_logits') gives
    both heads.

    Choices left open here: labelled and unlabelled images share one batch in their natural proportion (Zhai et al.
    draw separate labelled and unlabelled batches), and the supervised loss uses the un-rotated copy only."""

    def __init__(self, label_fraction: float = 0.1, label_sampling: str = "per_class", label_seed: int = 0,
                 label_weight: float = 1.0):
        super().__init__(label_fraction, label_sampling, label_seed)
        self.label_weight = label_weight

    def losses(self, pop, batches, idx):
        x, rotation_labels = rotations(batches.images(idx))
        pop.train()
        rotation_logits, logits = pop(x, "rotation_and_logits")
        batch = idx.shape[1]
        supervised = masked_cross_entropy(at_least_fp32(logits[:, :batch]), batches.labels(idx),
                                          self.labelled(batches, idx))
        return rotation_loss(rotation_logits, rotation_labels) + self.label_weight * supervised, None


class FewLabels(_Labelled):
    """Supervised training on the labelled part of the training set only: the cross-entropy of the batch's labelled
    images (masked mean; 0 when the batch has none), one augmented view, the label classifier.

    Every step of the pruning run is kept (the same steps as every other objective) and the loss counts only the
    batch's labelled images; Caron et al. train on the labelled subset alone with its own schedule."""

    def losses(self, pop, batches, idx):
        x = batches.images(idx)
        pop.train()
        logits = at_least_fp32(pop(x, "logits"))
        return masked_cross_entropy(logits, batches.labels(idx), self.labelled(batches, idx)), None
