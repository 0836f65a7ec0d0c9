"""Training objectives: small units that hold their hyperparameters and turn one batch of a population into a
loss per member. Adding one is one class and one registry entry (`OBJECTIVES`); a phase names it."""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch.func import vmap

from common.engine.batches import Batches
from common.engine.losses import SupConLoss
from common.engine.population import Population


def at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    """Losses in fp32 under bf16 autocast, but float64 kept (the equivalence tests run in float64)."""
    return t if t.dtype == torch.float64 else t.float()


class Objective(ABC):
    """losses(pop, batches, idx [P, B]) -> (mean loss per member [P], correct predictions per member [P] or None).
    An objective with its own training state (a memory bank, say) saves it through state_dict/load_state_dict."""

    reports_accuracy = True

    @abstractmethod
    def losses(self, pop: Population, batches: Batches, idx: torch.Tensor):
        """One batch: idx [P, B] indexes each member's own training images."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Objectives without their own state have nothing to restore."""


def _cross_entropy(logits: torch.Tensor, labels: torch.Tensor):
    losses = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view(labels.shape)
    return losses.mean(1), (logits.argmax(-1) == labels).sum(1)


class CrossEntropy(Objective):
    """Supervised training of the whole network (and finetuning after pruning)."""

    def losses(self, pop, batches, idx):
        labels = batches.labels(idx)
        x = batches.images(idx)
        pop.train()
        return _cross_entropy(at_least_fp32(pop(x, "logits")), labels)


class LinearProbe(Objective):
    """The linear classifier on the frozen encoder: features in eval mode without gradients, as the authors'
    SupCon classifier stage."""

    def losses(self, pop, batches, idx):
        labels = batches.labels(idx)
        x = batches.images(idx)
        with torch.no_grad():
            pop.eval()
            features = at_least_fp32(pop(x, "features"))
        weight, bias = pop.params["classifier.weight"], pop.params["classifier.bias"]
        logits = torch.einsum("pbd,pcd->pbc", features, at_least_fp32(weight)) + at_least_fp32(bias)[:, None]
        return _cross_entropy(logits, labels)


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


OBJECTIVES = {"ce": CrossEntropy, "linear": LinearProbe, "supcon": SupCon}


def make_objective(name: str, **hparams) -> Objective:
    return OBJECTIVES[name](**hparams)
