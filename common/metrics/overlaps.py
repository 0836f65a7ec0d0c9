"""Overlap of PIE sets: which PIEs two (learning method, pruning method) pairs share and which are unique.

The authors plotted per-class common/unique PIE bars (`pies_class_distribution_common`) but never released the
code computing the intersections (paper_recipe A.8); this is our reconstruction. Pure functions: boolean PIE
masks over the same test set in, counts out. Everything is vectorised over examples.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np


def _masks(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"PIE masks must be two [N] vectors over the same examples, got {a.shape} and {b.shape}")
    return a, b


def overlap_counts(a, b) -> dict:
    """|A|, |B|, |A∩B|, unique to A, unique to B and the Jaccard index |A∩B|/|A∪B| of two PIE masks [N].
    Jaccard is NaN when both sets are empty (no PIEs to share or not)."""
    a, b = _masks(a, b)
    common = int((a & b).sum())
    union = int((a | b).sum())
    return dict(size_a=int(a.sum()), size_b=int(b.sum()), common=common, unique_a=int((a & ~b).sum()),
                unique_b=int((b & ~a).sum()), jaccard=common / union if union else float("nan"))


def per_class_overlap(a, b, labels, num_classes: int) -> dict:
    """Per class (of `labels` [N], e.g. the true labels): common, unique_a and unique_b counts, each [C]."""
    a, b = _masks(a, b)
    labels = np.asarray(labels)
    if labels.shape != a.shape:
        raise ValueError(f"labels must be [N={a.size}], got shape {labels.shape}")
    count = lambda mask: np.bincount(labels[mask], minlength=num_classes)
    return dict(common=count(a & b), unique_a=count(a & ~b), unique_b=count(b & ~a))


def pairwise_overlaps(pie_sets: dict) -> list[dict]:
    """Overlap counts of every unordered pair of PIE masks in {name: mask [N]}, in insertion order:
    [{'a': name_a, 'b': name_b, **overlap_counts}]."""
    return [dict(a=name_a, b=name_b, **overlap_counts(pie_sets[name_a], pie_sets[name_b]))
            for name_a, name_b in combinations(pie_sets, 2)]
