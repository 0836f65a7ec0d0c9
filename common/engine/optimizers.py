"""Optimizers and their learning-rate schedules, as a registry: a phase names its optimizer (`Phase.optimizer`)
and `build_optimizer` returns it with the phase's schedulers, each stepped once per epoch."""
from __future__ import annotations

from typing import Callable

import torch

from common.engine.phase import Phase


def sgd(params: list[torch.Tensor], phase: Phase) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=phase.learning_rate, momentum=phase.momentum, weight_decay=phase.weight_decay,
                           nesterov=phase.nesterov)


def adam(params: list[torch.Tensor], phase: Phase) -> torch.optim.Optimizer:
    """Adam with L2 weight decay (torch's coupled form) and default betas; `momentum` does not apply."""
    return torch.optim.Adam(params, lr=phase.learning_rate, weight_decay=phase.weight_decay)


OPTIMIZERS: dict[str, Callable[[list, Phase], torch.optim.Optimizer]] = {"sgd": sgd, "adam": adam}


def build_optimizer(params: list[torch.Tensor], phase: Phase):
    """-> (optimizer, [schedulers]): MultiStepLR at the phase's milestones, chained with CosineAnnealingLR when
    the phase asks for it (the authors chain both on the SupCon classifier)."""
    optimizer = OPTIMIZERS[phase.optimizer](params, phase)
    schedulers = [torch.optim.lr_scheduler.MultiStepLR(optimizer, list(phase.milestones), phase.gamma)]
    if phase.cosine:
        schedulers.append(torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, phase.epochs, phase.eta_min))
    return optimizer, schedulers
