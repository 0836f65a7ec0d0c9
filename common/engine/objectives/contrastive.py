"""Contrastive objectives on two views of every image: SupCon (Khosla et al.) and SimCLR (Chen et al.)."""
from __future__ import annotations

import torch
from torch.func import vmap

from common.engine.losses import SupConLoss
from common.engine.objectives.base import Objective, at_least_fp32


def two_view_projections(pop, batches, idx: torch.Tensor) -> torch.Tensor:
    """The projection head's L2-normalised output for two views of every image, [P, B, 2, D] (view 1, view 2)."""
    pop.train()
    z = at_least_fp32(pop(batches.two_views(idx), "projection"))
    batch = idx.shape[1]
    return torch.stack([z[:, :batch], z[:, batch:]], dim=2)


class SupCon(Objective):
    """Khosla et al.'s supervised contrastive loss on two views of every image (the projection head's output)."""

    reports_accuracy = False

    def __init__(self, temperature: float = 0.5, base_temperature: float = 0.07):
        self.loss = SupConLoss(temperature, base_temperature)

    def losses(self, pop, batches, idx):
        labels = batches.labels(idx)
        return vmap(self.loss)(two_view_projections(pop, batches, idx), labels), None


class SimCLR(Objective):
    """Chen et al. 2020's NT-Xent ("A Simple Framework for Contrastive Learning of Visual Representations"), one of
    Caron et al. 2020's pretexts: SupConLoss without labels and with base_temperature = temperature (no rescaling),
    i.e. for each of the 2B views -log(exp(s_i,pos / T) / sum_{a != i} exp(s_ia / T)), averaged, on the
    projection head's output."""

    reports_accuracy = False

    def __init__(self, temperature: float = 0.5):
        self.loss = SupConLoss(temperature, base_temperature=temperature)

    def losses(self, pop, batches, idx):
        return vmap(self.loss)(two_view_projections(pop, batches, idx)), None
