"""The labelled part of a training set for semi-supervised objectives (S4L, training on few labels)."""
from __future__ import annotations

import torch
from torch import Tensor

SAMPLINGS = ("per_class", "classes")


def labelled_subset(labels: Tensor, fraction: float, sampling: str, seed: int = 0) -> Tensor:
    """labels [N] int -> bool mask [N] of the labelled examples, drawn from a generator seeded by `seed` (the same
    subset for every member), as Zhai et al. 2019 (S4L) keep a labelled part of the training set:

    - 'per_class': round(fraction * n_c) examples of every class c at random (at least 1 of each class present);
    - 'classes': round(fraction * C) of the C classes present at random (at least 1), with all their examples."""
    if sampling not in SAMPLINGS:
        raise ValueError(f"label sampling {sampling!r}: choose from {SAMPLINGS}")
    if not 0 < fraction <= 1:
        raise ValueError(f"label fraction {fraction} must lie in (0, 1]")
    labels = labels.cpu().long()
    generator = torch.Generator().manual_seed(seed)
    classes, counts = labels.unique(return_counts=True)
    if sampling == "classes":
        chosen = classes[torch.randperm(len(classes), generator=generator)[:_share(fraction, len(classes))]]
        return torch.isin(labels, chosen)
    # rank of each example within its class in a random order: the first round(fraction * n_c) ranks are kept
    order = torch.randperm(len(labels), generator=generator)
    order = order[labels[order].argsort(stable=True)]  # class by class, random order within each class
    starts = counts.cumsum(0) - counts
    position = torch.searchsorted(classes, labels[order])
    ranks = torch.empty_like(labels)
    ranks[order] = torch.arange(len(labels)) - starts[position]
    wanted = _share(fraction, counts)
    return ranks < wanted[torch.searchsorted(classes, labels)]


def _share(fraction: float, count):
    """round(fraction * count) (half to even, as Python's round), at least 1; count an int or an int tensor."""
    if isinstance(count, Tensor):
        return (count.double() * fraction).round().long().clamp(min=1)
    return max(1, round(fraction * count))
