"""Pools: which tensors of a network a criterion ranks. A pool is one registry entry `name -> fn(network) ->
[parameter names]`. BatchNorm is never pruned, nor are the pretext heads (SupCon's projection, RotNet's rotation
classifier)."""
from __future__ import annotations

from typing import Callable, Iterable

import torch.nn as nn

CLASSIFIER = ("classifier.weight", "classifier.bias")


def prunable_names(module: nn.Module, include_bias: bool = False, exclude: Iterable[str] = ()) -> list[str]:
    """Weights (and optionally biases) of every Conv2d and Linear in `module`; names starting with a prefix in
    `exclude` are left out."""
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


HEAD_PREFIXES = ("projection", "rotation")  # the pretext heads' parameters (common.models.Heads): never pruned


def encoder_convs(network: nn.Module) -> list[str]:
    """Every conv weight of the encoder (the SupCon encoder's GMP pool): no head's."""
    return prunable_names(network, exclude=("classifier", *HEAD_PREFIXES))


POOLS: dict[str, Callable[[nn.Module], list[str]]] = {
    "encoder_convs": encoder_convs,
    # the authors' supervised GMP pool and one-shot pool: encoder convs, the classifier's weight and bias
    "encoder_convs_and_classifier": lambda network: encoder_convs(network) + list(CLASSIFIER),
    "encoder_convs_and_classifier_weight": lambda network: encoder_convs(network) + list(CLASSIFIER[:1]),
    "classifier": lambda network: list(CLASSIFIER),
    # every conv and linear weight of the classifying model: the authors' measured weight sparsity
    "weights": lambda network: prunable_names(network, exclude=HEAD_PREFIXES),
}
