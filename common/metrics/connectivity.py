"""Linear mode connectivity and Zhou et al.'s regimes.

A barrier is read from an error (or loss) curve e(t) measured at evenly spaced points of the segment between two
networks, t = 0 … 1 (endpoints included). Two definitions, both reported:
- Zhou et al.'s (their notebook): m = (e(0) + e(1)) / 2, t* = argmax_t |m - e(t)| over all points, endpoints
  included, and MC = m - e(t*): negative for a barrier, about 0 when connected. Where no point leaves the
  endpoints' range the farthest points are the two endpoints, tied at half their gap, and numpy's argmax takes
  the first: MC = +gap/2 or -gap/2 by which end the curve starts from (`zhou_barrier([.05] + [.06] * 9 + [.07])`
  is +0.01, the reversed curve -0.01). `within_range_zero=True` counts such a path as 0 (connected) and is
  otherwise theirs: the value the regime rule reads, so that a connected pair with unequal endpoints never counts
  toward a barrier [ours].
- Frankle et al.'s: max_t e(t) - (e(0) + e(1)) / 2, positive for a barrier (+gap/2 on a monotone path).

Regimes (`regimes`) are decided on intervals over a cell's pairs (`cell_interval`): their boundaries are drawn
by hand, ours are stated rules.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

REGIMES = ("I", "II-A", "II-B", "n/a")


def zhou_barrier(curve: np.ndarray, within_range_zero: bool = False) -> np.ndarray:
    """curve [..., T] -> MC [...] (their sign: < 0 is a barrier); `within_range_zero`: 0 where every point lies
    within the endpoints' range (the farthest point is an endpoint)."""
    curve = np.asarray(curve, dtype=float)
    mean = (curve[..., 0] + curve[..., -1]) / 2
    distance = np.abs(mean[..., None] - curve)
    farthest = distance.argmax(axis=-1)
    barrier = mean - np.take_along_axis(curve, farthest[..., None], axis=-1)[..., 0]
    if within_range_zero:
        inside = distance[..., 1:-1].max(axis=-1, initial=0.0) <= distance[..., 0]
        barrier = np.where(inside, 0.0, barrier)
    return barrier


def frankle_barrier(curve: np.ndarray) -> np.ndarray:
    """curve [..., T] -> max_t e(t) - mean of the endpoints (> 0 is a barrier)."""
    curve = np.asarray(curve, dtype=float)
    return curve.max(axis=-1) - (curve[..., 0] + curve[..., -1]) / 2


def mean_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """values [n] (independent replicates) -> (mean, low, high): Student's t interval at `level`, n - 1 degrees of
    freedom; (mean, nan, nan) below two replicates (no interval, never a zero-width one); replicates all equal give
    their value (the t interval's limit). The one place an interval is computed here: to be pointed at
    common.metrics.inference once that module lands."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    mean = float(values.mean()) if len(values) else np.nan
    if len(values) < 2:
        return mean, np.nan, np.nan
    if np.ptp(values) == 0:  # every replicate the same (a flat path in every pair): the interval is that value
        return mean, mean, mean
    low, high = stats.t.interval(level, len(values) - 1, loc=mean, scale=stats.sem(values))
    return mean, float(low), float(high)


def cell_interval(values: np.ndarray, dense_seeds: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """One cell's pairs -> (mean over its pairs, low, high). Pairs of one dense seed share their pruned network
    (and pairs of one retrain seed a network), so they are not independent replicates: the replicates are the
    dense seeds' means over their pairs (the independent units; the interval covers the dense training's
    randomness too), t on their number - 1 degrees of freedom. One dense seed: no interval (nan)."""
    values, dense_seeds = np.asarray(values, dtype=float), np.asarray(dense_seeds)
    units = [np.nanmean(values[dense_seeds == s]) for s in np.unique(dense_seeds)]
    _, low, high = mean_interval(units, level) if len(units) >= 2 else (np.nan, np.nan, np.nan)
    return (float(np.nanmean(values)) if len(values) else np.nan), low, high


def regimes(barrier_high: np.ndarray, cka_low: np.ndarray, cka_high: np.ndarray, threshold: float = -0.1) -> np.ndarray:
    """Zhou et al.'s regimes by stated rules [ours; their boundaries are drawn by hand] for grids [T, D] whose rows
    run from the highest temperature to the lowest and whose columns are loads (densities):

    - 'I' (poorly connected) where the barrier's interval lies below `threshold` (its upper end `barrier_high` <
      threshold: a barrier credibly deeper than the threshold);
    - among the other cells of a density column (regime II), 'II-B' (connected, more similar outputs) where the
      CKA's interval lies wholly above the interval of the column's hottest regime-II cell: lowering the
      temperature at a fixed load made the two re-trainings' outputs credibly more similar, their direction
      II-A -> II-B; 'II-A' otherwise (the hottest regime-II cell of a column is II-A by this rule).

    A cell without an interval (one dense seed) gets 'n/a': no verdict."""
    barrier_high, cka_low, cka_high = (np.asarray(a, dtype=float) for a in (barrier_high, cka_low, cka_high))
    connected = ~(barrier_high < threshold)
    hottest = connected.argmax(axis=0)  # the first regime-II row of each column
    reference = cka_high[hottest, np.arange(connected.shape[1])]
    rows = np.arange(connected.shape[0])[:, None]
    similar = connected & (rows > hottest) & (cka_low > reference)
    labels = np.where(~connected, "I", np.where(similar, "II-B", "II-A"))
    return np.where(np.isnan(barrier_high) | np.isnan(cka_low), "n/a", labels)
