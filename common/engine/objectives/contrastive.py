"""Contrastive objectives on two views of every image: SupCon (Khosla et al.) and SimCLR (Chen et al.)."""
from __future__ import annotations

import torch
from torch.func import vmap

from common.engine.losses import SupConLoss
from common.engine.objectives.base import Objective, at_least_fp32


class SupCon(Objective):
    """Khosla et al.'s supervised contrastive loss on two views of every image (the projection head's output)."""

    reports_accuracy = False

    def __init__(self, temperature: float = 0.5, base_temperature: float = 0.07):
        self.loss = SupConLoss(temperature, base_temperature)

    def losses(self, pop, batches, idx):
        labels = batches.labels(idx)
        x = batches.two_views(idx)
        pop.train()
        z = at_least_fp32(pop(x, "projection"))
        batch = idx.shape[1]
        features = torch.stack([z[:, :batch], z[:, batch:]], dim=2)  # [P, B, 2, D]
        return vmap(self.loss)(features, labels), None


class SimCLR(Objective):
    """Chen et al. 2020's NT-Xent ("A Simple Framework for Contrastive Learning of Visual Representations"), one of
    Caron et al. 2020's pretexts: SupConLoss without labels and with base_temperature = temperature (no rescaling),
    i.e. for each of the 2B views -log(exp(s_i,pos / T) / sum_{a != i} exp(s_ia / T)), averaged, on the
    projection head's output."""

    reports_accuracy = False

    def __init__(self, temperature: float = 0.5):
        self.loss = SupConLoss(temperature, base_temperature=temperature)

    def losses(self, pop, batches, idx):
        x = batches.two_views(idx)
        pop.train()
        z = at_least_fp32(pop(x, "projection"))
        batch = idx.shape[1]
        return vmap(self.loss)(torch.stack([z[:, :batch], z[:, batch:]], dim=2)), None
