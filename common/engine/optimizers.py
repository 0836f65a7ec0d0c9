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


class SAM(torch.optim.Optimizer):
    """Sharpness-aware minimisation (Foret et al. 2021; `adaptive`: Kwon et al.'s ASAM) around SGD, for stacked
    population parameters [P, ...]: every member's ascent step uses its own gradient norm, so members stay
    independent. `step(closure)`: the gradients at w are in .grad; w moves to w + e(w), e = rho g / ||g|| (ASAM:
    rho w^2 g / ||w g||), `closure` recomputes the gradients there (the loop replays the same batch with BatchNorm
    statistics frozen), w returns and SGD steps with those gradients. `needs_closure` tells the loop to pass one."""

    needs_closure = True

    def __init__(self, params, phase: Phase):
        params = list(params)
        super().__init__(params, dict(rho=phase.sam_rho, adaptive=phase.sam_adaptive))
        self.base = sgd(params, phase)
        self.param_groups = self.base.param_groups  # one set of groups: schedulers and lr read the base's
        for group in self.param_groups:
            group.setdefault("rho", phase.sam_rho)
            group.setdefault("adaptive", phase.sam_adaptive)
        self.state = self.base.state

    @torch.no_grad()
    def _ascent(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Move every parameter to w + e(w); -> [(parameter, e)] to undo it."""
        moved = []
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            members = params[0].shape[0]
            scaled = [(p.abs() if group["adaptive"] else 1.0) * p.grad for p in params]
            norm = torch.stack([s.reshape(members, -1).square().sum(1) for s in scaled]).sum(0).sqrt()  # [P]
            for p, s in zip(params, scaled):
                shape = (members,) + (1,) * (p.dim() - 1)
                e = (p.abs() if group["adaptive"] else 1.0) * s * (group["rho"] / (norm + 1e-12)).view(shape)
                p.add_(e)
                moved.append((p, e))
        return moved

    def step(self, closure=None):
        if closure is None:
            raise RuntimeError("SAM needs a closure that recomputes the gradients at the perturbed weights")
        moved = self._ascent()
        with torch.enable_grad():
            closure()
        with torch.no_grad():
            for p, e in moved:
                p.sub_(e)
        self.base.step()

    def state_dict(self):
        return self.base.state_dict()

    def load_state_dict(self, state_dict):
        self.base.load_state_dict(state_dict)
        self.param_groups = self.base.param_groups
        self.state = self.base.state


OPTIMIZERS: dict[str, Callable[[list, Phase], torch.optim.Optimizer]] = {"sgd": sgd, "adam": adam, "sam": SAM}


def build_optimizer(params: list[torch.Tensor], phase: Phase):
    """-> (optimizer, [schedulers]): MultiStepLR at the phase's milestones, chained with CosineAnnealingLR when
    the phase asks for it (the authors chain both on the SupCon classifier)."""
    optimizer = OPTIMIZERS[phase.optimizer](params, phase)
    schedulers = [torch.optim.lr_scheduler.MultiStepLR(optimizer, list(phase.milestones), phase.gamma)]
    if phase.cosine:
        schedulers.append(torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, phase.epochs, phase.eta_min))
    return optimizer, schedulers
