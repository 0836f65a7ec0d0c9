"""Pruning Identified Exemplars (Hooker et al. 2019, arXiv 1911.05248).

An example is a PIE at sparsity s iff the modal (most frequent) predicted label of a population of K dense
models differs from the modal label of a population of K models pruned to s. Ground truth is not used.

Everything here is vectorised over examples: one bincount over all columns at once, so 30+30 models x
10,000 examples takes milliseconds. Numpy in -> numpy out, a torch tensor in -> a torch tensor out
(common.metrics.arrays).
"""
import numpy as np

from common.metrics.arrays import like_inputs, to_numpy


def _as_int_preds(preds, name="preds"):
    """[K, N] integer numpy array from numpy or torch input, with a clear error otherwise."""
    preds = to_numpy(preds)
    if preds.ndim != 2 or preds.shape[0] < 1:
        raise ValueError(f"{name} must be [K, N] (K >= 1 models' predicted labels for N examples), got shape "
                         f"{preds.shape}")
    if not np.issubdtype(preds.dtype, np.integer):
        raise ValueError(f"{name} must hold integer labels, got dtype {preds.dtype}")
    if preds.size and preds.min() < 0:
        raise ValueError(f"{name} must hold non-negative labels")
    return preds


def modal_labels(preds, num_classes=None):
    """Most frequent label per column of preds [K, N] -> [N].

    Ties go to the SMALLEST label: this is the authors' `np.bincount(preds).argmax()` rule (argmax returns the
    first maximum). Note that Hooker et al.'s reference code (pandas `mode().max()`) breaks ties to the LARGEST
    label instead; with K=30 models and 10 classes ties are rare but do occur.

    Vectorised: column n's labels are shifted by n * C, so a single bincount yields the [N, C] count table.
    """
    return like_inputs(_modal_labels(_as_int_preds(preds), num_classes), preds)


def _modal_labels(preds: np.ndarray, num_classes=None) -> np.ndarray:
    K, N = preds.shape
    top = int(preds.max(initial=0))
    C = top + 1 if num_classes is None else int(num_classes)
    if top >= C:
        raise ValueError(f"preds hold label {top}, which num_classes={C} does not allow (labels are 0..{C - 1})")
    counts = np.bincount((preds + np.arange(N) * C).ravel(), minlength=N * C).reshape(N, C)
    return counts.argmax(axis=1)


def find_pies(dense_preds, pruned_preds):
    """Boolean [N] PIE mask: modal label of dense [K_dense, N] != modal label of pruned [K_pruned, N]."""
    dense = _as_int_preds(dense_preds, "dense_preds")
    pruned = _as_int_preds(pruned_preds, "pruned_preds")
    if dense.shape[1] != pruned.shape[1]:
        raise ValueError(f"dense and pruned populations cover different examples: N={dense.shape[1]} vs "
                         f"{pruned.shape[1]}")
    C = int(max(dense.max(initial=0), pruned.max(initial=0))) + 1
    return like_inputs(_modal_labels(dense, C) != _modal_labels(pruned, C), dense_preds, pruned_preds)


def agreement(preds, modal):
    """Fraction of the K models whose prediction equals the modal label, per example -> float [N]."""
    labels = _as_int_preds(preds)
    modes = to_numpy(modal)
    if modes.shape != (labels.shape[1],):
        raise ValueError(f"modal must be [N={labels.shape[1]}], got shape {modes.shape}")
    return like_inputs((labels == modes[None, :]).mean(axis=0), preds, modal)
