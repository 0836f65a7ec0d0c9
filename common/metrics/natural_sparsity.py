"""Natural sparsity (Caron et al. 2020, §4.3): the fraction of weights that training has already driven to about
zero, before any pruning. Pure functions over stacked weights {name: [P, ...]} (P members).

A threshold is absolute (|w| < value) or relative to the layer's spread (|w| < value x std of that member's
layer). The defaults are the three the issue asks for: 1e-4 and 1e-3 absolute, 1e-2 x std.
"""
from __future__ import annotations

from typing import Mapping

import torch

THRESHOLDS = {"abs1e-4": ("abs", 1e-4), "abs1e-3": ("abs", 1e-3), "std1e-2": ("std", 1e-2)}


def near_zero(weight: torch.Tensor, kind: str, value: float) -> torch.Tensor:
    """Bool [P, ...]: entries of each member's tensor below the threshold ('abs': |w| < value; 'std': |w| < value
    x the std of that member's tensor)."""
    magnitude = weight.detach().abs().float()
    if kind == "abs":
        return magnitude < value
    if kind == "std":
        spread = weight.detach().float().flatten(1).std(dim=1)
        return magnitude < (value * spread).view(-1, *[1] * (weight.dim() - 1))
    raise ValueError(f"threshold kind {kind!r}: 'abs' or 'std'")


def natural_sparsity(weights: Mapping[str, torch.Tensor], thresholds: Mapping[str, tuple] = THRESHOLDS
                     ) -> dict[tuple[str, str], torch.Tensor]:
    """{(layer, threshold name): fraction near zero per member [P]}, with layer 'all' for the whole pool (every
    weight counted once, so large layers weigh more)."""
    out = {}
    for label, (kind, value) in thresholds.items():
        counts = {name: near_zero(w, kind, value).flatten(1).sum(1) for name, w in weights.items()}
        for name, count in counts.items():
            out[(name, label)] = count / weights[name][0].numel()
        total = sum(w[0].numel() for w in weights.values())
        out[("all", label)] = sum(counts.values()) / total
    return out
