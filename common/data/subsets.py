"""The labelled part of a training set for semi-supervised objectives (S4L, training on few labels)."""
from __future__ import annotations

import logging

import torch
from torch import Tensor

SAMPLINGS = ("per_class", "classes")
MIN_CLASSES = 2  # 'classes' sampling never labels fewer classes: one class makes the label loss trivial

log = logging.getLogger("prune")


def labelled_subset(labels: Tensor, fraction: float, sampling: str, seed: int = 0) -> Tensor:
    """labels [N] int -> bool mask [N] of the labelled examples, drawn from a generator seeded by `seed` (the same
    subset for every member), as Zhai et al. 2019 (S4L) keep a labelled part of the training set:

    - 'per_class': round(fraction * n_c) examples of every class c at random (at least 1 of each class present);
    - 'classes': round(fraction * C) of the C classes present at random, with all their examples (Caron et al.'s
      "subset of classes"). Where that is fewer than MIN_CLASSES (0.1 of 10 classes: one class, whose
      cross-entropy is trivially zero), MIN_CLASSES classes are drawn instead and only round(fraction * N) of their
      examples labelled, spread over them in proportion to their sizes: the same number of labels as 'per_class',
      on fewer classes, which is the comparison the paper makes. A warning line says so."""
    if sampling not in SAMPLINGS:
        raise ValueError(f"label sampling {sampling!r}: choose from {SAMPLINGS}")
    if not 0 < fraction <= 1:
        raise ValueError(f"label fraction {fraction} must lie in (0, 1]")
    labels = labels.cpu().long()
    generator = torch.Generator().manual_seed(seed)
    classes, counts = labels.unique(return_counts=True)
    if sampling == "per_class":
        return _per_class(labels, classes, counts, _share(fraction, counts), generator)
    wanted = _share(fraction, len(classes))
    chosen = torch.randperm(len(classes), generator=generator)[:max(wanted, min(MIN_CLASSES, len(classes)))]
    if wanted >= min(MIN_CLASSES, len(classes)):
        return torch.isin(labels, classes[chosen])
    log.warning("--label_sampling classes --label_fraction %g keeps round(%g x %d) = %d class (a trivial label "
                "loss): labelling %d classes instead, %d of their images (as many labels as per_class)", fraction,
                fraction, len(classes), wanted, len(chosen), _share(fraction, len(labels)))
    kept = torch.zeros(len(classes), dtype=torch.long)
    kept[chosen] = (counts[chosen].double() * _share(fraction, len(labels)) / counts[chosen].sum()).round().long()
    return _per_class(labels, classes, counts, torch.minimum(kept, counts), generator)


def _per_class(labels: Tensor, classes: Tensor, counts: Tensor, wanted: Tensor, generator: torch.Generator) -> Tensor:
    """The first wanted[c] examples of every class c (counts[c] of them) in a random order: the rank of each example
    within its class in one random permutation of the whole set."""
    order = torch.randperm(len(labels), generator=generator)
    order = order[labels[order].argsort(stable=True)]  # class by class, random order within each class
    starts = counts.cumsum(0) - counts
    position = torch.searchsorted(classes, labels[order])
    ranks = torch.empty_like(labels)
    ranks[order] = torch.arange(len(labels)) - starts[position]
    return ranks < wanted[torch.searchsorted(classes, labels)]


def _share(fraction: float, count):
    """round(fraction * count) (half to even, as Python's round), at least 1; count an int or an int tensor."""
    if isinstance(count, Tensor):
        return (count.double() * fraction).round().long().clamp(min=1)
    return max(1, round(fraction * count))
