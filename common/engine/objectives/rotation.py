"""RotNet (Gidaris, Singh & Komodakis 2018, "Unsupervised Representation Learning by Predicting Image Rotations"),
one of Caron et al. 2020's pretexts: a 4-way classifier predicts by how much each image was rotated."""
from __future__ import annotations

import torch
from torch import Tensor

from common.engine.objectives.base import Objective, at_least_fp32, cross_entropy

ROTATIONS = 4  # 0, 90, 180 and 270 degrees: the classes of the rotation head


def rotations(x: Tensor) -> tuple[Tensor, Tensor]:
    """x [P, B, C, H, W] -> (the four rotations of every image [P, 4B, C, H, W], rotation labels [4B]).

    Block k of B images is x rotated by k * 90 degrees (torch.rot90 with k in dims (-2, -1)) and carries label k,
    so the 0-degree block x[:, :B] is the batch itself. Gidaris et al. put all four rotations of an image in the
    same batch; which order they take in the batch changes neither the mean loss nor BatchNorm's statistics."""
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"rotations need square images, got {x.shape[-2]}x{x.shape[-1]}")
    rotated = torch.cat([torch.rot90(x, k, dims=(-2, -1)) for k in range(ROTATIONS)], dim=1)
    labels = torch.arange(ROTATIONS, device=x.device).repeat_interleave(x.shape[1])
    return rotated, labels


def rotation_loss(rotation_logits: Tensor, labels: Tensor) -> Tensor:
    """Rotation logits [P, 4B, 4], labels [4B] -> mean cross-entropy per member [P]."""
    return cross_entropy(at_least_fp32(rotation_logits), labels.expand(rotation_logits.shape[0], -1))[0]


class RotNet(Objective):
    """Gidaris et al.'s RotNet: one augmented view per image, its four rotations in the same batch, and the
    cross-entropy of the rotation head over the 4B images. Rotation accuracy is not label accuracy, so none is
    reported."""

    reports_accuracy = False

    def losses(self, pop, batches, idx):
        x, labels = rotations(batches.images(idx))
        pop.train()
        return rotation_loss(pop(x, "rotation"), labels), None
