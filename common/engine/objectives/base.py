"""What every training objective is: a small unit that holds its hyperparameters and turns one batch of a
population into a loss per member."""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F

from common.engine.batches import Batches
from common.engine.population import Population


def at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    """Losses in fp32 under bf16 autocast, but float64 kept (the equivalence tests run in float64)."""
    return t if t.dtype == torch.float64 else t.float()


class Objective(ABC):
    """losses(pop, batches, idx [P, B]) -> (mean loss per member [P], correct predictions per member [P] or None).

    An objective with its own training state (a memory bank, say) saves it through state_dict/load_state_dict:
    tensors whose leading dimension is the member, so that one member's part can be kept in a rewind point and
    stacked again with others'."""

    reports_accuracy = True

    @abstractmethod
    def losses(self, pop: Population, batches: Batches, idx: torch.Tensor):
        """One batch: idx [P, B] indexes each member's own training images."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Objectives without their own state have nothing to restore."""


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor):
    """logits [P, B, C], labels [P, B] -> (mean loss per member [P], correct predictions per member [P])."""
    losses = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view(labels.shape)
    return losses.mean(1), (logits.argmax(-1) == labels).sum(1)
