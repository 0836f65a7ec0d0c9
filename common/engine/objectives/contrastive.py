"""Contrastive objectives on two views of every image: SupCon (Khosla et al.)."""
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
