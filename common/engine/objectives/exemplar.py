"""Exemplar (Dosovitskiy et al. 2014) in the triplet-margin form of Doersch & Zisserman 2017 ("Multi-task
Self-Supervised Visual Learning"), as Caron et al. 2020 ("Pruning Convolutional Neural Networks with
Self-Supervision") train it: two views of an image are pulled together, a view of another image pushed away."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor
from torch.func import vmap

from common.engine.objectives.base import Objective
from common.engine.objectives.contrastive import two_view_projections


def triplet_loss(anchor: Tensor, positive: Tensor, negative: Tensor, margin: float, eps: float = 1e-6) -> Tensor:
    """[B, D] each -> mean over B of relu(d(a, p) - d(a, n) + margin), d(x, y) = ||x - y + eps||_2 as
    F.pairwise_distance defines it; equals F.triplet_margin_loss(a, p, n, margin=margin). Written out (no
    data-dependent control flow) so that it vmaps over a population."""
    def distance(x, y):
        return (x - y + eps).norm(dim=-1)

    return F.relu(distance(anchor, positive) - distance(anchor, negative) + margin).mean(-1)


class Exemplar(Objective):
    """Triplet-margin Exemplar on L2-normalised embeddings (the 'projection' head) of two augmented views per image
    (`ExemplarAugment`): anchor = view 1 of image i, positive = view 2 of image i, negative = view 2 of image
    (i + 1) mod B. Choice the papers leave open: the negative is the next image of the (randomly ordered) batch, a
    deterministic pick that is always another image and draws no extra random numbers."""

    reports_accuracy = False

    def __init__(self, margin: float = 1.0):
        self.margin = margin

    def losses(self, pop, batches, idx):
        views = two_view_projections(pop, batches, idx)
        anchor, positive = views[:, :, 0], views[:, :, 1]
        negative = positive.roll(-1, dims=1)  # row i holds view 2 of image i + 1
        return vmap(triplet_loss, in_dims=(0, 0, 0, None))(anchor, positive, negative, self.margin), None
