"""BatchNorm folded into the convolution before it, for passes that only infer (evaluation, features, the points of
an interpolation after their BatchNorm reset).

In eval mode a BatchNorm is an affine map per channel, y = (x - mean) * s + beta with s = gamma / sqrt(var + eps);
when x is a convolution's output and nothing else reads it, the pair is one convolution with weights W * s and bias
(b - mean) * s + beta: one pass over the activations less, the same function up to float rounding (measured 1e-6
relative on WRN-10-1 logits; tests/test_speed.py bounds it). Which pairs qualify is read from the network's graph
(torch.fx, per forward mode): a convolution whose only reader is a BatchNorm. The pre-activation networks
(WRN, PreResNet) fold their mid-block BatchNorm only (the others follow a ReLU or a residual sum); an architecture
torch.fx cannot trace (VGG's shape-dependent pooling) runs unfolded.
"""
from __future__ import annotations

import copy

import torch
import torch.fx as fx
import torch.nn as nn

from common.engine.population import Population

_PAIRS: dict = {}  # (architecture, mode) -> [(conv name, BatchNorm name)], process-wide
_TEMPLATES: dict = {}  # (architecture, mode) -> the folded architecture (meta tensors), process-wide


def conv_bn_pairs(template: nn.Module, mode: str) -> list[tuple[str, str]]:
    """(convolution, BatchNorm) module names where the BatchNorm is the convolution's only reader in `mode`."""
    key = (repr(template), mode)
    if key not in _PAIRS:
        try:
            graph = fx.symbolic_trace(copy.deepcopy(template).eval(), concrete_args={"mode": mode}).graph
        except Exception:  # noqa: BLE001 - fx raises many kinds on control flow it cannot trace: run unfolded
            graph = fx.Graph()
        modules = dict(template.named_modules())
        _PAIRS[key] = [(node.args[0].target, node.target) for node in graph.nodes
                       if node.op == "call_module" and isinstance(modules.get(node.target), nn.BatchNorm2d)
                       and _is_conv(node.args[0], modules) and len(node.args[0].users) == 1
                       and modules[node.target].track_running_stats]
    return _PAIRS[key]


def _is_conv(node, modules) -> bool:
    return isinstance(node, fx.Node) and node.op == "call_module" and isinstance(modules.get(node.target), nn.Conv2d)


def folded(pop: Population, mode: str) -> Population:
    """`pop` in eval mode with every foldable BatchNorm of `mode` folded into its convolution: a new population
    over new tensors (pop is left as it is), run as pop runs; pop itself when nothing folds."""
    pairs = conv_bn_pairs(pop.template, mode)
    if not pairs or pop.template.training:
        return pop
    params, buffers = dict(pop.params), dict(pop.buffers)
    with torch.no_grad():
        for conv_name, bn_name in pairs:
            eps = pop.template.get_submodule(bn_name).eps
            scale = params.pop(f"{bn_name}.weight") / torch.sqrt(buffers.pop(f"{bn_name}.running_var") + eps)
            shift = params.pop(f"{bn_name}.bias") - buffers.pop(f"{bn_name}.running_mean") * scale
            buffers.pop(f"{bn_name}.num_batches_tracked", None)
            params[f"{conv_name}.weight"] = params[f"{conv_name}.weight"] * scale.view(*scale.shape, 1, 1, 1)
            bias = params.get(f"{conv_name}.bias")
            params[f"{conv_name}.bias"] = shift if bias is None else bias * scale + shift
    return Population.of(folded_template(pop.template, mode, pairs), params, buffers, like=pop)


def folded_template(template: nn.Module, mode: str, pairs: list[tuple[str, str]]) -> nn.Module:
    """The architecture with each pair's BatchNorm replaced by an identity and its convolution given a bias."""
    key = (repr(template), mode)
    if key not in _TEMPLATES:
        folded = copy.deepcopy(template).eval()
        for conv_name, bn_name in pairs:
            conv = folded.get_submodule(conv_name)
            if conv.bias is None:
                conv.bias = nn.Parameter(torch.empty(conv.out_channels, device="meta"))
            parent, _, attribute = bn_name.rpartition(".")
            setattr(folded.get_submodule(parent), attribute, nn.Identity())
        _TEMPLATES[key] = folded
    return _TEMPLATES[key]
