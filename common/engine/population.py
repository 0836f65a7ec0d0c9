"""A population: K networks of one architecture whose parameters and buffers are stacked along a leading
member dimension and run together with `torch.func.vmap` over `functional_call`.

Under vmap, convolutions with per-member weights become one grouped convolution and BatchNorm keeps separate
batch statistics and running buffers per member, so members stay exactly independent: summing their losses
gives every member the gradient it would get alone, and SGD (elementwise) keeps their updates apart.

On the CPU a population may instead run its members one after another inside each call (`execution`): the same
numbers up to float rounding. The automatic choice is a rule measured on this project's 2-core CPU machine
(WRN-10-1, K = 5, one SGD step's images per second; glibc allocator tuned as in common.runtime):

    per-member batch x pixels    vmapped   one after another
    digits 8x8, batch 64                    8,053        6,362
    digits 8x8, batch 256                   8,586        8,691
    Fashion-MNIST 28x28, batch 32             907          781
    digits 8x8, batch 1,024                 8,095       10,799
    Fashion-MNIST 28x28, batch 128            785        1,044

so the members run one after another from 32,768 images x pixels per member and call (a grouped convolution over
small per-member work amortises the per-call overhead; over large work it loses to the plain convolution, which
oneDNN tunes better). On CUDA the members are always vmapped.
"""
from __future__ import annotations

import copy
from functools import partial

import torch
import torch.nn as nn
from torch.func import functional_call, stack_module_state, vmap
from torch.utils._pytree import tree_map

from common.engine.precision import channels_last_enabled

CPU_SEQUENTIAL_FROM = 32_768  # images x pixels per member and call (module docstring)
EXECUTIONS = ("auto", "vmap", "sequential")


class Population:
    def __init__(self, networks: list[nn.Module], device: torch.device | str = "cpu", execution: str = "auto"):
        if not networks:
            raise ValueError("a population needs at least one network")
        template = copy.deepcopy(networks[0]).to("meta")
        params, buffers = stack_module_state(networks)
        self._assemble(template, {k: v.detach().to(device).requires_grad_(True) for k, v in params.items()},
                       {k: v.detach().to(device) for k, v in buffers.items()}, execution)

    def _assemble(self, template: nn.Module, params: dict, buffers: dict, execution: str) -> None:
        if execution not in EXECUTIONS:
            raise ValueError(f"execution {execution!r}: choose from {EXECUTIONS}")
        self.template, self.params, self.buffers = template, params, buffers
        self.size = len(next(iter(params.values())))
        self.execution = execution
        self.channels_last = None  # members run one after another take their images channels_last (None: the
        # device's default, common.engine.precision: on for the CPU, so analyses that build a population get it too)
        self.compiled = False  # torch.compile of the member forward (sequential) or of the vmapped one
        self._vmapped = {}

    @classmethod
    def of(cls, template: nn.Module, params: dict, buffers: dict, like: "Population") -> "Population":
        """A population of already-stacked tensors that runs as `like` does (BatchNorm folded for inference)."""
        pop = cls.__new__(cls)
        pop._assemble(template, params, buffers, like.execution)
        pop.configure(channels_last=like.channels_last, compile=like.compiled)
        return pop

    def configure(self, execution: str | None = None, channels_last: bool | None = None,
                  compile: bool | None = None) -> "Population":
        """How the members run (common.config.JobConfig: --population_execution, --channels_last, --compile);
        None leaves a setting as it is."""
        if execution is not None:
            if execution not in EXECUTIONS:
                raise ValueError(f"execution {execution!r}: choose from {EXECUTIONS}")
            self.execution = execution
        if channels_last is not None:
            self.channels_last = bool(channels_last)
        if compile is not None:
            self.compiled = bool(compile)
        return self

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
        """torch.compile the member forward (--compile): `configure(compile=True)`."""
        self.configure(compile=True)

    def _function(self, mode: str, shared_input: bool, sequential: bool):
        if self.size == 1 or sequential:  # vmap over one member takes a slow batched-conv path on the CPU (~50x)
            return self._one_after_another(mode, shared_input)
        batched = vmap(partial(_member_forward, self.template, mode), in_dims=(0, 0, None if shared_input else 0),
                       randomness="error")
        if not self.compiled:
            return batched
        key = (mode, shared_input, self.template.training)
        if key not in self._vmapped:
            self._vmapped[key] = torch.compile(batched)
        return self._vmapped[key]

    def _one_after_another(self, mode: str, shared_input: bool):
        """Each member's forward on its own slice of the stacked tensors, one member after another."""
        layout = torch.channels_last if channels_last_enabled(self.channels_last, self.device) else \
            torch.contiguous_format
        member = compiled_member(self.template, mode) if self.compiled else \
            partial(_member_forward, self.template, mode)

        def batched(params, buffers, x):
            outs = [member({k: v[i] for k, v in params.items()}, {k: v[i] for k, v in buffers.items()},
                           (x if shared_input else x[i]).contiguous(memory_format=layout))
                    for i in range(self.size)]
            return tree_map(lambda *parts: torch.stack(parts), *outs)
        return batched

    def sequential_for(self, x: torch.Tensor, shared_input: bool) -> bool:
        """Whether a call on x runs the members one after another (`execution`, else the module's rule)."""
        if self.execution != "auto":
            return self.execution == "sequential"
        if self.device.type != "cpu":
            return False
        batch = x.shape[0] if shared_input else x.shape[1]
        return batch * x.shape[-2] * x.shape[-1] >= CPU_SEQUENTIAL_FROM

    def __call__(self, x: torch.Tensor, mode: str = "logits", shared_input: bool = False):
        """x: [P, B, ...] (each member its own batch) or [B, ...] with shared_input=True (the same batch for all).
        Returns the member outputs stacked along dim 0."""
        return self._function(mode, shared_input, self.sequential_for(x, shared_input))(self.params, self.buffers, x)

    def member_state(self, index: int) -> dict[str, torch.Tensor]:
        """Member `index` as an ordinary state dict (what `Network.load_state_dict` takes)."""
        state = {k: v[index].detach().clone() for k, v in self.params.items()}
        state.update({k: v[index].detach().clone() for k, v in self.buffers.items()})
        return state


def _member_forward(template: nn.Module, mode: str, params: dict, buffers: dict, x: torch.Tensor):
    return functional_call(template, (params, buffers), (x,), {"mode": mode})


_COMPILED_MEMBERS: dict = {}  # (architecture, mode, training) -> compiled member forward, process-wide


def compiled_member(template: nn.Module, mode: str):
    """One member's forward compiled by torch.compile, shared by every population of the same architecture in this
    process (members, populations, stages): functional_call swaps in each member's tensors, so the compiled code only
    depends on the architecture (its repr: layers, widths, BatchNorm settings), the mode and train/eval. Each new
    input shape compiles once more (dynamic=False: static shapes run faster on the CPU; an epoch's shorter last
    batch is one shape more)."""
    key = (repr(template), mode, template.training)
    if key not in _COMPILED_MEMBERS:
        own = copy.deepcopy(template).train(template.training)
        # every entry shares _member_forward's code, whose compiled variants count against one recompile limit
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        _COMPILED_MEMBERS[key] = torch.compile(partial(_member_forward, own, mode), dynamic=False)
    return _COMPILED_MEMBERS[key]
