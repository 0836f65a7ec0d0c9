"""Intervals for claims measured on a few models: a bootstrap over population members, and Hooker et al.'s
class-level Welch test. Pure functions, numpy arrays in and out.

A replicate resamples the K members of each population with replacement and recomputes the statistic (modal
labels and PIEs, a mean score, a mean depth). `member_resamples` draws the dense population's indices from its
own stream of a generator seeded with `seed`, so every configuration of one learning method resamples its dense
population the same way in replicate b: statistics of several configurations combine replicate by replicate.
Intervals are percentile intervals (2.5 %, 97.5 %) re-centred on the estimate: the bootstrap's bias,
mean(replicates) - estimate, is subtracted from both ends. Why: a replicate of K members drawn with replacement
holds only about 0.67 K distinct ones, so its modal labels are noisier than the population's and its PIE count is
biased upward (measured on Fashion-MNIST, K = 5: 802 PIEs, plain percentile interval [899, 1961], which does not
hold the estimate). A mean over members has no such bias, so its interval is the plain percentile one up to
rounding. BCa would need replicates on both sides of the estimate, which a count biased this far does not give.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

REPLICATES = 1000
LEVEL = 0.95


def member_resamples(k: int, replicates: int = REPLICATES, seed: int = 0, stream: int = 0) -> np.ndarray:
    """[replicates, k] member indices drawn with replacement from the generator (seed, stream): stream 0 is the
    dense population's, 1 the pruned one's, so a dense population is resampled alike for every configuration."""
    return np.random.default_rng([seed, stream]).integers(0, k, size=(replicates, k))


def modal_labels_resampled(preds: np.ndarray, resamples: np.ndarray, num_classes: int) -> np.ndarray:
    """Modal label [B, N] of preds [K, N] under each replicate's members [B, K]; ties to the smallest label, as
    `common.metrics.pies.modal_labels`. One bincount per replicate, vectorised over examples."""
    _, n = preds.shape
    offsets = np.arange(n) * num_classes
    out = np.empty((len(resamples), n), dtype=np.int64)
    for b, members in enumerate(resamples):  # B bincounts of K x N labels: vectorised where the work is
        counts = np.bincount((preds[members] + offsets).ravel(), minlength=n * num_classes)
        out[b] = counts.reshape(n, num_classes).argmax(1)
    return out


def bootstrap_pies(dense_preds: np.ndarray, pruned_preds: np.ndarray, num_classes: int,
                   replicates: int = REPLICATES, seed: int = 0) -> np.ndarray:
    """PIE masks [B, N] of `replicates` bootstrap replicates: dense and pruned members resampled independently
    (the dense population from its own stream, see the module docstring)."""
    dense_draws = member_resamples(len(dense_preds), replicates, seed)
    pruned_draws = member_resamples(len(pruned_preds), replicates, seed, stream=1)
    return (modal_labels_resampled(dense_preds, dense_draws, num_classes)
            != modal_labels_resampled(pruned_preds, pruned_draws, num_classes))


def bootstrap_member_means(dense: np.ndarray, pruned: np.ndarray, replicates: int = REPLICATES,
                           seed: int = 0) -> np.ndarray:
    """[B] replicates of mean(pruned members) - mean(dense members) for per-member values dense [Kd],
    pruned [Kp] (a member's mean Q-Score, say)."""
    dense_draws = member_resamples(len(dense), replicates, seed)
    pruned_draws = member_resamples(len(pruned), replicates, seed, stream=1)
    return pruned[pruned_draws].mean(1) - dense[dense_draws].mean(1)


def bootstrap_means(values: np.ndarray, replicates: int = REPLICATES, seed: int = 0) -> np.ndarray:
    """[B] replicates of the mean of one population's per-member values [K]."""
    return values[member_resamples(len(values), replicates, seed)].mean(1)


def interval(replicates: np.ndarray, estimate: float, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of a statistic's bootstrap replicates, shifted by the bootstrap's estimate of its bias
    (mean(replicates) - estimate; see the module docstring)."""
    replicates = np.asarray(replicates, dtype=float)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail]) - (replicates.mean() - float(estimate))
    return float(low), float(high)


def verdict(low: float, high: float, threshold: float, above: bool = True) -> str:
    """TRUE when the whole interval lies on the claimed side of the threshold (above it, or below it when
    `above` is False), FALSE when it lies wholly on the other side, UNDECIDED when it straddles the threshold."""
    if low > threshold:
        return "TRUE" if above else "FALSE"
    if high < threshold:
        return "FALSE" if above else "TRUE"
    return "UNDECIDED"


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
