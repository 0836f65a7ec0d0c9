"""Pruning Identified Exemplars (Hooker et al. 2019, arXiv 1911.05248).

An example is a PIE at sparsity s iff the modal (most frequent) predicted label of a population of K dense
models differs from the modal label of a population of K models pruned to s. Ground truth is not used.

Everything here is vectorised over examples: one bincount over all columns at once, so 30+30 models x
10,000 examples takes milliseconds.
"""
import numpy as np


def _as_int_preds(preds, name="preds"):
    """[K, N] integer numpy array from numpy or torch input, with a clear error otherwise."""
    if hasattr(preds, "detach"):  # torch tensor, without importing torch here
        preds = preds.detach().cpu().numpy()
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[0] < 1:
        raise ValueError(f"{name} must be [K, N] with K >= 1 models, got shape {preds.shape}")
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
    preds = _as_int_preds(preds)
    K, N = preds.shape
    top = int(preds.max(initial=0))
    C = top + 1 if num_classes is None else int(num_classes)
    if top >= C:
        raise ValueError(f"label {top} >= num_classes={C}")
    counts = np.bincount((preds + np.arange(N) * C).ravel(), minlength=N * C).reshape(N, C)
    return counts.argmax(axis=1)


def find_pies(dense_preds, pruned_preds):
    """Boolean [N] PIE mask: modal label of dense [K_dense, N] != modal label of pruned [K_pruned, N]."""
    dense = _as_int_preds(dense_preds, "dense_preds")
    pruned = _as_int_preds(pruned_preds, "pruned_preds")
    if dense.shape[1] != pruned.shape[1]:
        raise ValueError(f"dense and pruned populations cover different examples: N={dense.shape[1]} vs {pruned.shape[1]}")
    C = int(max(dense.max(initial=0), pruned.max(initial=0))) + 1
    return modal_labels(dense, C) != modal_labels(pruned, C)


def agreement(preds, modal):
    """Fraction of the K models whose prediction equals the modal label, per example -> float [N]."""
    preds = _as_int_preds(preds)
    modal = np.asarray(modal.detach().cpu().numpy() if hasattr(modal, "detach") else modal)
    if modal.shape != (preds.shape[1],):
        raise ValueError(f"modal must be [N={preds.shape[1]}], got shape {modal.shape}")
    return (preds == modal[None, :]).mean(axis=0)
