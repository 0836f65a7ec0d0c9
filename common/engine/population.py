"""A population: K networks of one architecture whose parameters and buffers are stacked along a leading
member dimension and run together with `torch.func.vmap` over `functional_call`.

Under vmap, convolutions with per-member weights become one grouped convolution and BatchNorm keeps separate
batch statistics and running buffers per member, so members stay exactly independent: summing their losses
gives every member the gradient it would get alone, and SGD (elementwise) keeps their updates apart.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
from torch.func import functional_call, stack_module_state, vmap


class Population:
    def __init__(self, networks: list[nn.Module], device: torch.device | str = "cpu"):
        if not networks:
            raise ValueError("a population needs at least one network")
        self.size = len(networks)
        self.template = copy.deepcopy(networks[0]).to("meta")
        params, buffers = stack_module_state(networks)
        self.params = {k: v.detach().to(device).requires_grad_(True) for k, v in params.items()}
        self.buffers = {k: v.detach().to(device) for k, v in buffers.items()}
        self._compiled = {}

    @classmethod
    def from_states(cls, network: nn.Module, states: list[dict[str, torch.Tensor]], device="cpu") -> "Population":
        """Stack already-trained members: `network` gives the architecture, `states` the members' state dicts."""
        members = []
        for state in states:
            member = copy.deepcopy(network)
            member.load_state_dict(state, strict=True)
            members.append(member)
        return cls(members, device)

    @property
    def device(self) -> torch.device:
        return next(iter(self.params.values())).device

    def train(self, mode: bool = True) -> "Population":
        self.template.train(mode)
        return self

    def eval(self) -> "Population":
        return self.train(False)

    def compile(self) -> None:
        """Compile the vmapped forward once per (mode, input sharing); used on CUDA with --compile."""
        self._compiled = {"enabled": True}

    def _function(self, mode: str, shared_input: bool, sequential: bool):
        def member_forward(params, buffers, x):
            return functional_call(self.template, (params, buffers), (x,), {"mode": mode})

        if self.size == 1 or sequential:  # vmap over one member takes a slow batched-conv path on the CPU (~50x)
            def batched(params, buffers, x):
                outs = [member_forward({k: v[i] for k, v in params.items()}, {k: v[i] for k, v in buffers.items()},
                                       x if shared_input else x[i]) for i in range(self.size)]
                return torch.utils._pytree.tree_map(lambda *parts: torch.stack(parts), *outs)
        else:
            batched = vmap(member_forward, in_dims=(0, 0, None if shared_input else 0), randomness="error")
        if not self._compiled.get("enabled"):
            return batched
        key = (mode, shared_input, sequential, self.template.training)
        if key not in self._compiled:
            self._compiled[key] = torch.compile(batched)
        return self._compiled[key]

    def __call__(self, x: torch.Tensor, mode: str = "logits", shared_input: bool = False, sequential: bool = False):
        """x: [P, B, ...] (each member its own batch) or [B, ...] with shared_input=True (the same batch for all).
        Returns the member outputs stacked along dim 0. `sequential` runs the members one after another instead
        of vmapped (the same numbers up to float rounding; faster for inference on the CPU, see inference.py)."""
        return self._function(mode, shared_input, sequential)(self.params, self.buffers, x)

    def member_state(self, index: int) -> dict[str, torch.Tensor]:
        """Member `index` as an ordinary state dict (what `Network.load_state_dict` takes)."""
        state = {k: v[index].detach().clone() for k, v in self.params.items()}
        state.update({k: v[index].detach().clone() for k, v in self.buffers.items()})
        return state
