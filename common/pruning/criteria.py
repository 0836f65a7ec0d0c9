"""Pruning criteria: which entries of a pool each member loses. A criterion is one registry entry
`name -> fn(pool, sparsities, seeds, inputs) -> Masks` over a stacked pool {parameter name: [P, ...]} with one target
sparsity and one seed per member; `inputs` holds what else a criterion may read (the entries already pruned, the
population of networks and a batch of data for a data-driven criterion such as SNIP, its own options), so adding
one, data-driven or not, is a function and an entry here. Every one-shot pruning of the studies goes through this
registry: Corti et al.'s global/layerwise/random one-shot pruning, each IMP level of the tickets (global, the
previous level's masks ranked first), the three-regime grid's scopes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch

from common.pruning.masks import Masks, lowest_scores


def magnitude_masks(tensors: Mapping[str, torch.Tensor], sparsity, scope: str = "global",
                    masks: Mapping[str, torch.Tensor] | None = None) -> Masks:
    """Masks that prune the smallest-magnitude entries of stacked tensors {name: [P, ...]}.

    scope='global' ranks all tensors of a member together (one-shot global pruning); scope='layer' gives every
    tensor the same sparsity (the authors' GMP). `masks` marks entries already pruned: they rank below all."""
    scores = {}
    for name, tensor in tensors.items():
        score = tensor.detach().abs().float()
        if masks is not None and name in masks:
            score = score.masked_fill(~masks[name], -1.0)
        scores[name] = score
    return lowest_scores(scores, sparsity, scope)


def random_masks(tensors: Mapping[str, torch.Tensor], sparsity, generator: torch.Generator | None = None,
                 scope: str = "global") -> Masks:
    """Exactly round(s * size) entries pruned uniformly at random per member (per tensor with scope='layer')."""
    noise = {name: torch.rand(t.shape, generator=generator).to(t.device) for name, t in tensors.items()}
    return lowest_scores(noise, sparsity, scope)


@dataclass(frozen=True)
class Inputs:
    """What a criterion may read besides the pool, its sparsities and seeds."""

    masks: Mapping[str, torch.Tensor] | None = None  # entries already pruned: ranked below every other (IMP)
    population: Any = None  # the stacked networks (common.engine.population.Population), for a data-driven criterion
    batch: tuple | None = None  # (images, labels) a data-driven criterion scores the pool on
    eps: float = 1e-4  # random_natural: weights below this in magnitude count as naturally zero


NO_INPUTS = Inputs()


def _global(pool: Mapping[str, torch.Tensor], sparsities: list[float], seeds: list[int],
            inputs: Inputs = NO_INPUTS) -> Masks:
    return magnitude_masks(pool, sparsities, "global", masks=inputs.masks)


def _layerwise(pool: Mapping[str, torch.Tensor], sparsities: list[float], seeds: list[int],
               inputs: Inputs = NO_INPUTS) -> Masks:
    return magnitude_masks(pool, sparsities, "layer", masks=inputs.masks)


def _per_member_random(pool: Mapping[str, torch.Tensor], sparsities: list[float], seeds: list[int],
                       inputs: Inputs = NO_INPUTS) -> Masks:
    """Each member's random draw comes from its own generator (seeded by its seed): the same as pruned alone."""
    members = [random_masks({n: t[i:i + 1] for n, t in pool.items()}, sparsities[i],
                            torch.Generator().manual_seed(seed)) for i, seed in enumerate(seeds)]
    return Masks({n: torch.cat([m[n] for m in members]) for n in pool})


def natural_random_masks(tensors: Mapping[str, torch.Tensor], sparsity, eps: float,
                         generator: torch.Generator | None = None) -> Masks:
    """Caron et al.'s random baseline corrected for natural sparsity (§4.3): the weights that training already
    drove below `eps` in magnitude are pruned first, the rest of the exact count at random over the pool. Where
    there are more natural zeros than the count, a random subset of them is pruned. Noise in [0, 1) for natural
    zeros and in [1, 2) for the others, ranked globally, does both at once."""
    noise = {}
    for name, t in tensors.items():
        natural = t.detach().abs() < eps
        noise[name] = torch.rand(t.shape, generator=generator).to(t.device) + (~natural).float()
    return lowest_scores(noise, sparsity, "global")


def _per_member_natural(pool: Mapping[str, torch.Tensor], sparsities: list[float], seeds: list[int],
                        inputs: Inputs = NO_INPUTS) -> Masks:
    members = [natural_random_masks({n: t[i:i + 1] for n, t in pool.items()}, sparsities[i], inputs.eps,
                                    torch.Generator().manual_seed(seed)) for i, seed in enumerate(seeds)]
    return Masks({n: torch.cat([m[n] for m in members]) for n in pool})


Criterion = Callable[[Mapping[str, torch.Tensor], list, list, Inputs], Masks]
CRITERIA: dict[str, Criterion] = {
    "global": _global,  # magnitude, all tensors of a member ranked together
    "layerwise": _layerwise,  # magnitude, every tensor to the same sparsity
    "random": _per_member_random,
    # ranks the pool it is given (a trained network's weights) by natural zeros (option eps), then at random
    "random_natural": _per_member_natural,
}


def prune_once(params: Mapping[str, torch.Tensor], pool: list[str], sparsities: list[float], criterion: str,
               seeds: list[int], **inputs) -> Masks:
    """Stacked keep-masks pruning each member once to its sparsity over the parameters named in `pool`
    (`inputs`: the fields of Inputs the criterion reads, e.g. eps for random_natural, masks for IMP)."""
    return CRITERIA[criterion]({n: params[n].detach() for n in pool}, sparsities, seeds, Inputs(**inputs))
