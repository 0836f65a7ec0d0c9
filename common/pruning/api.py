"""The single-model pruning API that notebooks import: prune an `nn.Module` in place and get its masks."""
from __future__ import annotations

from typing import Iterable

import torch.nn as nn

from common.pruning.criteria import magnitude_masks, random_masks
from common.pruning.masks import apply_masks_
from common.pruning.pools import prunable_names

SingleMasks = dict  # {parameter name: bool mask, True = kept}


def _prune_module(module: nn.Module, names: list[str], make_masks) -> SingleMasks:
    params = dict(module.named_parameters())
    missing = [n for n in names if n not in params]
    if missing or not names:
        raise ValueError(f"nothing to prune or unknown parameters: {missing or 'empty pool'}")
    stacked = {n: params[n].detach().unsqueeze(0) for n in names}
    masks = {n: m[0] for n, m in make_masks(stacked).items()}
    apply_masks_(params, masks)
    return masks


def global_magnitude_prune(module: nn.Module, sparsity: float, include_bias: bool = False,
                           exclude: Iterable[str] = ()) -> SingleMasks:
    """Rank together the weights of every Conv2d and Linear inside `module` (biases too with include_bias,
    layers named by a prefix in `exclude` left out), zero exactly round(sparsity * total) of the smallest
    magnitude in place, and return {parameter name: bool mask, True = kept}."""
    names = prunable_names(module, include_bias, exclude)
    return _prune_module(module, names, lambda t: magnitude_masks(t, sparsity, "global"))


def layerwise_magnitude_prune(module: nn.Module, sparsity: float, include_bias: bool = False,
                              exclude: Iterable[str] = ()) -> SingleMasks:
    """Every pruned tensor loses the same fraction of its own smallest-magnitude entries."""
    names = prunable_names(module, include_bias, exclude)
    return _prune_module(module, names, lambda t: magnitude_masks(t, sparsity, "layer"))


def random_prune(module: nn.Module, sparsity: float, include_bias: bool = False, exclude: Iterable[str] = (),
                 generator=None) -> SingleMasks:
    """Exactly round(sparsity * total) entries of the pool pruned uniformly at random."""
    names = prunable_names(module, include_bias, exclude)
    return _prune_module(module, names, lambda t: random_masks(t, sparsity, generator, "global"))
