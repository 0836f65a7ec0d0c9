"""Unstructured pruning with plain boolean masks (True = kept), without torch.nn.utils.prune: its forward
pre-hooks rename state_dict keys (`weight_orig`, `weight_mask`) and fight torch.compile.

The core functions work on stacked tensors [P, ...] (P population members): every member is ranked on its own,
never across the stack. The module-level functions are the single-model API.

Exact counts: a member prunes exactly round(sparsity * pool size) entries, ties in magnitude broken by position
(a stable sort), so the measured sparsity equals the target whatever the weights. Entries already pruned rank
below everything, so masks only ever shrink (gradual pruning keeps earlier decisions).
"""
from __future__ import annotations

from typing import Iterable, Mapping

import torch
import torch.nn as nn

Masks = dict[str, torch.Tensor]


# ---- which parameters are pruned -----------------------------------------------------------------

def prunable_names(module: nn.Module, include_bias: bool = False, exclude: Iterable[str] = ()) -> list[str]:
    """Weights (and optionally biases) of every Conv2d and Linear in `module`; names starting with a prefix in
    `exclude` are left out. BatchNorm is never pruned."""
    exclude = tuple(exclude)
    names = []
    for mod_name, mod in module.named_modules():
        if not isinstance(mod, (nn.Conv2d, nn.Linear)) or (exclude and mod_name.startswith(exclude)):
            continue
        prefix = f"{mod_name}." if mod_name else ""
        names.append(prefix + "weight")
        if include_bias and mod.bias is not None:
            names.append(prefix + "bias")
    return names


# ---- stacked core ------------------------------------------------------------------------------

def _counts(sparsity, members: int, size: int) -> torch.Tensor:
    """Entries to prune per member: round(s * size) with Python's rounding, one sparsity per member allowed."""
    values = sparsity.tolist() if torch.is_tensor(sparsity) else sparsity
    values = [values] * members if isinstance(values, (int, float)) else list(values)
    if len(values) != members:
        raise ValueError(f"{len(values)} sparsities for {members} members")
    for s in values:
        if not 0.0 <= s < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {s}")
    return torch.tensor([int(round(s * size)) for s in values])


def _lowest(scores: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """scores [P, n] -> keep-mask [P, n] that drops each row's counts[p] lowest scores (stable tie-break)."""
    order = torch.argsort(scores, dim=1, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(scores.shape[1], device=scores.device).expand_as(order))
    return rank >= counts.to(scores.device)[:, None]


def _scores(tensors: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor] | None, name: str):
    score = tensors[name].detach().abs().float().flatten(1)
    if masks is not None and name in masks:
        score = score.masked_fill(~masks[name].flatten(1), -1.0)
    return score


def magnitude_masks(tensors: Mapping[str, torch.Tensor], sparsity, scope: str = "global",
                    masks: Mapping[str, torch.Tensor] | None = None) -> Masks:
    """Masks that prune the smallest-magnitude entries of stacked tensors {name: [P, ...]}.

    scope='global' ranks all tensors of a member together (one-shot global pruning); scope='layer' gives every
    tensor the same sparsity (the authors' GMP). `masks` marks entries already pruned."""
    names = list(tensors)
    members = tensors[names[0]].shape[0]
    if scope == "layer":
        return {n: _lowest(_scores(tensors, masks, n), _counts(sparsity, members, tensors[n][0].numel()))
                .view_as(tensors[n]) for n in names}
    if scope != "global":
        raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}")
    scores = torch.cat([_scores(tensors, masks, n) for n in names], dim=1)
    keep = _lowest(scores, _counts(sparsity, members, scores.shape[1]))
    return _split(keep, tensors)


def random_masks(tensors: Mapping[str, torch.Tensor], sparsity, generator: torch.Generator | None = None,
                 scope: str = "global") -> Masks:
    """Exactly round(s * size) entries pruned uniformly at random per member (per tensor with scope='layer')."""
    def noise(t):
        return torch.rand(t.shape, generator=generator).to(t.device).flatten(1)

    if scope == "layer":
        return {n: _lowest(noise(t), _counts(sparsity, t.shape[0], t[0].numel())).view_as(t)
                for n, t in tensors.items()}
    scores = torch.cat([noise(t) for t in tensors.values()], dim=1)
    first = next(iter(tensors.values()))
    return _split(_lowest(scores, _counts(sparsity, first.shape[0], scores.shape[1])), tensors)


def _split(keep: torch.Tensor, tensors: Mapping[str, torch.Tensor]) -> Masks:
    sizes = [t[0].numel() for t in tensors.values()]
    return {n: part.reshape(t.shape) for (n, t), part in zip(tensors.items(), keep.split(sizes, dim=1))}


@torch.no_grad()
def apply_masks_(tensors: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> None:
    """Zero the pruned entries in place (weights, gradients or optimizer buffers alike)."""
    for name, mask in masks.items():
        tensors[name].mul_(mask.to(tensors[name].dtype))


def mask_sparsity(masks: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Fraction pruned per member [P] over all masked tensors."""
    pruned = sum((~m).flatten(1).sum(1) for m in masks.values())
    total = sum(m[0].numel() for m in masks.values())
    return pruned.float() / total


def zero_fraction(tensors: Iterable[torch.Tensor]) -> float:
    """Measured sparsity of unstacked tensors: the fraction of entries exactly zero."""
    tensors = list(tensors)
    zeros = sum(int((t == 0).sum()) for t in tensors)
    return zeros / max(1, sum(t.numel() for t in tensors))


# ---- single-model API ----------------------------------------------------------------------------

def _prune_module(module: nn.Module, names: list[str], make_masks) -> Masks:
    params = dict(module.named_parameters())
    missing = [n for n in names if n not in params]
    if missing or not names:
        raise ValueError(f"nothing to prune or unknown parameters: {missing or 'empty pool'}")
    stacked = {n: params[n].detach().unsqueeze(0) for n in names}
    masks = {n: m[0] for n, m in make_masks(stacked).items()}
    apply_masks_(params, masks)
    return masks


def global_magnitude_prune(module: nn.Module, sparsity: float, include_bias: bool = False,
                           exclude: Iterable[str] = ()) -> Masks:
    """Rank together the weights of every Conv2d and Linear inside `module` (biases too with include_bias,
    layers named by a prefix in `exclude` left out), zero exactly round(sparsity * total) of the smallest
    magnitude in place, and return {parameter name: bool mask, True = kept}."""
    names = prunable_names(module, include_bias, exclude)
    return _prune_module(module, names, lambda t: magnitude_masks(t, sparsity, "global"))


def layerwise_magnitude_prune(module: nn.Module, sparsity: float, include_bias: bool = False,
                              exclude: Iterable[str] = ()) -> Masks:
    """Every pruned tensor loses the same fraction of its own smallest-magnitude entries."""
    names = prunable_names(module, include_bias, exclude)
    return _prune_module(module, names, lambda t: magnitude_masks(t, sparsity, "layer"))


def random_prune(module: nn.Module, sparsity: float, include_bias: bool = False, exclude: Iterable[str] = (),
                 generator: torch.Generator | None = None) -> Masks:
    """Exactly round(sparsity * total) entries of the pool pruned uniformly at random."""
    names = prunable_names(module, include_bias, exclude)
    return _prune_module(module, names, lambda t: random_masks(t, sparsity, generator, "global"))


def gmp_sparsity(step: int, final_sparsity: float, begin_step: int, end_step: int,
                 initial_sparsity: float = 0.0) -> float:
    """Zhu & Gupta's cubic schedule: s_t = s_f + (s_i - s_f)(1 - (t - t0)/(t_end - t0))^3, initial_sparsity up
    to begin_step and exactly final_sparsity from end_step on."""
    if begin_step >= end_step:
        raise ValueError(f"begin_step ({begin_step}) must be < end_step ({end_step})")
    if step <= begin_step:
        return initial_sparsity
    if step >= end_step:
        return final_sparsity
    progress = (step - begin_step) / (end_step - begin_step)
    return final_sparsity + (initial_sparsity - final_sparsity) * (1.0 - progress) ** 3
