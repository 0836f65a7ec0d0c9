"""The single-model pruning API that notebooks import: prune an `nn.Module` in place and get its masks, and hold
masks through training.

Pools. These functions rank every Conv2d and Linear weight of the module they are given (biases too with
`include_bias`), the generic rule of Zhu & Gupta and Hooker et al. for any network. The command line instead prunes
the authors' pools of the toolkit's own networks (common.pruning.pools.POOLS): one-shot pruning ranks the encoder's
convs with the classifier's weight and, by default (`--prune_bias`), its bias; heads (SupCon's projection) are
never pruned. So `include_bias=False` here and `--prune_bias` there are defaults of two different pools, not one
switch set two ways: `one_shot_prune(network, s)` prunes the CLI's pool of a toolkit network (a test holds it
equal to the finetuning script's masks). On other networks every conv and linear layer has a bias, of another
scale than its weights, so ranking biases with the weights by default would change what "sparsity" means.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import torch
import torch.nn as nn

from common.pruning.criteria import magnitude_masks, random_masks
from common.pruning.masks import Masks, apply_masks_
from common.pruning.pools import POOLS, prunable_names

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
    magnitude in place, and return {parameter name: bool mask, True = kept}.

    The zeros are not held: an optimizer step regrows them unless `hold_masks(module, masks)` holds them."""
    names = prunable_names(module, include_bias, exclude)
    return _prune_module(module, names, lambda t: magnitude_masks(t, sparsity, "global"))


def layerwise_magnitude_prune(module: nn.Module, sparsity: float, include_bias: bool = False,
                              exclude: Iterable[str] = ()) -> SingleMasks:
    """Every pruned tensor loses the same fraction of its own smallest-magnitude entries (not held: see
    `hold_masks`)."""
    names = prunable_names(module, include_bias, exclude)
    return _prune_module(module, names, lambda t: magnitude_masks(t, sparsity, "layer"))


def random_prune(module: nn.Module, sparsity: float, include_bias: bool = False, exclude: Iterable[str] = (),
                 generator=None) -> SingleMasks:
    """Exactly round(sparsity * total) entries of the pool pruned uniformly at random (not held: see
    `hold_masks`)."""
    names = prunable_names(module, include_bias, exclude)
    return _prune_module(module, names, lambda t: random_masks(t, sparsity, generator, "global"))


def one_shot_prune(network: nn.Module, sparsity: float, prune_bias: bool = True) -> SingleMasks:
    """Prune a toolkit network (common.models.Network) as `sup_/clr_pruning_finetune.py` do: one global
    magnitude ranking of the encoder's convs and the classifier's weight, and its bias with `prune_bias` (the
    CLI's `--prune_bias`, on by default as the authors'); heads and BatchNorm are never pruned."""
    pool = POOLS["encoder_convs_and_classifier" if prune_bias else "encoder_convs_and_classifier_weight"]
    return _prune_module(network, pool(network), lambda t: magnitude_masks(t, sparsity, "global"))


class HeldMasks:
    """Masks held on a module's parameters through training; `release()` lets the pruned entries move again.

    Each masked parameter gets a gradient hook that zeroes the gradient of its pruned entries. A weight that is
    zero and gets zero gradient stays zero under SGD (momentum, Nesterov, weight decay), Adam and AdamW
    started after pruning: their updates of such an entry are all zero. An optimizer that already holds state
    from before pruning (a momentum buffer) would still move it: pass it as `optimizer`, and after each of its
    steps the pruned weights and its state at those entries are zeroed too, as the toolkit's own training does
    (common.pruning.masks.Masks.hold)."""

    def __init__(self, module: nn.Module, masks: Mapping[str, torch.Tensor], optimizer=None):
        params = dict(module.named_parameters())
        unknown = sorted(set(masks) - set(params))
        if unknown:
            raise ValueError(f"masks name parameters that the module does not have: {', '.join(unknown)}")
        for name, mask in masks.items():
            if mask.shape != params[name].shape or mask.dtype != torch.bool:
                raise ValueError(f"the mask of {name} must be a bool tensor of shape {tuple(params[name].shape)}, "
                                 f"got {mask.dtype} {tuple(mask.shape)}")
        self.masks = {name: mask.to(params[name].device) for name, mask in masks.items()}
        self._params = {name: params[name] for name in masks}
        apply_masks_(self._params, self.masks)
        self._handles = [self._params[name].register_hook(lambda grad, m=mask: grad * m.to(grad.dtype))
                         for name, mask in self.masks.items()]
        if optimizer is not None:
            held = Masks(self.masks)  # single masks: Masks.hold needs only that a mask matches its tensor
            held.hold(self._params, optimizer)
            self._handles.append(optimizer.register_step_post_hook(
                lambda opt, args, kwargs: held.hold(self._params, opt)))

    def release(self) -> None:
        """Stop holding: later steps may regrow the pruned entries."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


def hold_masks(module: nn.Module, masks: Mapping[str, torch.Tensor], optimizer=None) -> HeldMasks:
    """Zero the pruned entries of `module` now and keep them zero through training (see HeldMasks): `masks` as
    `global_magnitude_prune` returns them, {parameter name: bool mask, True = kept}."""
    return HeldMasks(module, masks, optimizer)
