"""Hooker et al.'s class-level test of which classes pruning affects disparately (arXiv 1911.05248): per member,
each class's accuracy minus the member's overall accuracy ("mean-shifted"); per class, a two-tailed Welch t-test of
dense vs pruned members. It is their procedure, kept as they ran it (independent samples, p <= 0.05 per class, no
correction across classes); the study's own claims go through common.metrics.verdicts. Pure functions, numpy
arrays in and out.
"""
from __future__ import annotations

import numpy as np
from scipy import stats


def welch_t_test(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-tailed Welch t-test per column of a [Ka, C] vs b [Kb, C] -> (t [C], p [C]); equals
    `scipy.stats.ttest_ind(a, b, equal_var=False)` column by column. A column with no variance in either sample
    gives t = nan, p = nan (nothing to test), as does a sample of fewer than 2 members."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return np.full(a.shape[1], np.nan), np.full(a.shape[1], np.nan)
    var_a, var_b = a.var(0, ddof=1) / len(a), b.var(0, ddof=1) / len(b)
    se2 = var_a + var_b
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (a.mean(0) - b.mean(0)) / np.sqrt(se2)
        dof = se2 ** 2 / (var_a ** 2 / (len(a) - 1) + var_b ** 2 / (len(b) - 1))
    p = 2 * stats.t.sf(np.abs(t), dof)
    return t, p


def class_disparity(dense_preds: np.ndarray, pruned_preds: np.ndarray, labels: np.ndarray, num_classes: int,
                    alpha: float = 0.05) -> dict[str, np.ndarray]:
    """Hooker et al.'s class-level test: per member, each class's accuracy minus the member's overall accuracy
    ("mean-shifted"); per class, a two-tailed Welch t-test dense vs pruned members. -> per class: the two means,
    t, p and whether p <= alpha (disparately affected)."""
    shifted = [_class_accuracy(preds, labels, num_classes) - (preds == labels).mean(1, keepdims=True)
               for preds in (dense_preds, pruned_preds)]
    t, p = welch_t_test(shifted[1], shifted[0])
    return dict(dense_shifted=shifted[0].mean(0), pruned_shifted=shifted[1].mean(0), t=t, p=p,
                disparate=np.nan_to_num(p, nan=1.0) <= alpha)


def _class_accuracy(preds: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """[K, C] accuracy of each member on each class."""
    correct = (preds == labels).astype(float)
    onehot = np.eye(num_classes)[labels]  # [N, C]
    return correct @ onehot / np.maximum(onehot.sum(0), 1)
