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

Regimes (`regimes`) are decided on intervals over a cell's pairs (`cell_interval`, the jackknife over seeds):
their boundaries are drawn by hand, ours are stated rules.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from common.metrics.verdicts import MIN_SEEDS, jackknife

# the last: too few seeds for an interval, no verdict (not "n/a": pandas reads that back as NaN)
REGIMES = ("I", "II-A", "II-B", "no interval")


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


def seed_jackknife(estimate, leave_one_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(standard error [...], degrees of freedom [...]) of the delete-one-seed jackknife over leave_one_out [..., K]:
    `common.metrics.verdicts.jackknife` (nan below its MIN_SEEDS), the one place the cell intervals call it.

    `cell_interval` calls it twice, once over the dense seeds and once over the retrain seeds, and sums the two
    variances on min(K) - 1 df, rather than one jackknife over the union of both kinds of seed: that one (K = 6,
    5 df) gives 5.0 % false regime-I verdicts at 2.5 % nominal with 3 x 3 seeds, its 5 df overstating what the 3
    seeds of the kind that carries the spread know; the two-way sum gives 2.4 % whichever kind carries it, 0.2-0.7 %
    when both do (20,000 simulated cells; tests/test_three_regime.py checks <= 2.5 %)."""
    result = jackknife(estimate, leave_one_out)
    return np.asarray(result.se, dtype=float), np.asarray(result.df, dtype=float)


def cell_interval(values: np.ndarray, dense_seeds: np.ndarray, retrain_pairs: np.ndarray, level: float = 0.95):
    """A cell's pairs -> (mean over its pairs, low, high) at `level`. values [..., P] (leading dims: cells of one
    design, e.g. simulated ones); dense_seeds [P]; retrain_pairs [P, 2] the two retrain seeds of each pair. nan
    values (the CKA of a network whose outputs are constant) are left out of every mean.

    A cell's pairs are not independent replicates: the pairs of one dense seed share their pruned network, and a
    retrain seed is shared twice over, by the pairs it enters and, as one data order, by every dense seed's
    re-training with it. So the interval is the jackknife over seeds of both kinds: dropping dense seed s (every
    pair of it) gives one standard error, dropping retrain seed r (every pair holding r, under every dense seed)
    another, each by `seed_jackknife` (verdicts' jackknife); their variances are summed (two-way clustering, the
    intersection term left out: conservative) on min(K) - 1 degrees of freedom, K the number of seeds of each kind
    (why not one jackknife over the union: `seed_jackknife`). Simulated in tests/test_three_regime.py: a false
    regime-I verdict <= 2.5 % whichever kind of seed carries the spread, where either jackknife alone gives 50 %
    when the other kind carries it. Fewer than MIN_SEEDS of either kind: no interval (nan), never a zero-width
    one."""
    values, dense_seeds = np.asarray(values, dtype=float), np.asarray(dense_seeds)
    retrain_pairs = np.asarray(retrain_pairs).reshape(-1, 2)
    mean = _nanmean(values)
    blocks = ([dense_seeds != s for s in np.unique(dense_seeds)],
              [(retrain_pairs != r).all(axis=1) for r in np.unique(retrain_pairs)])
    (se_dense, df_dense), (se_retrain, df_retrain) = (
        seed_jackknife(mean, np.stack([_nanmean(values[..., kept]) for kept in kind], -1)) for kind in blocks)
    half = stats.t.ppf(0.5 + level / 2, np.minimum(df_dense, df_retrain)) * np.hypot(se_dense, se_retrain)
    return mean[()], (mean - half)[()], (mean + half)[()]


def _nanmean(values: np.ndarray) -> np.ndarray:
    """Mean over the last axis of the finite values; nan where none is left (no jackknife then)."""
    finite = np.isfinite(values)
    with np.errstate(invalid="ignore"):
        return np.where(finite, values, 0.0).sum(-1) / finite.sum(-1)


def regimes(barrier_high: np.ndarray, cka_low: np.ndarray, cka_high: np.ndarray, threshold: float = -0.1) -> np.ndarray:
    """Zhou et al.'s regimes by stated rules [ours; their boundaries are drawn by hand] for grids [T, D] whose rows
    run from the highest temperature to the lowest and whose columns are loads (densities):

    - 'I' (poorly connected) where the barrier's interval lies below `threshold` (its upper end `barrier_high` <
      threshold: a barrier credibly deeper than the threshold);
    - among the other cells of a density column (regime II), 'II-B' (connected, more similar outputs) where the
      CKA's interval lies wholly above the interval of the column's hottest regime-II cell: lowering the
      temperature at a fixed load made the two re-trainings' outputs credibly more similar, their direction
      II-A -> II-B; 'II-A' otherwise (the hottest regime-II cell of a column is II-A by this rule).

    A cell without an interval (fewer than MIN_SEEDS seeds of a kind) gets 'no interval': no verdict."""
    barrier_high, cka_low, cka_high = (np.asarray(a, dtype=float) for a in (barrier_high, cka_low, cka_high))
    connected = ~(barrier_high < threshold)
    hottest = connected.argmax(axis=0)  # the first regime-II row of each column
    reference = cka_high[hottest, np.arange(connected.shape[1])]
    rows = np.arange(connected.shape[0])[:, None]
    similar = connected & (rows > hottest) & (cka_low > reference)
    labels = np.where(~connected, "I", np.where(similar, "II-B", "II-A"))
    return np.where(np.isnan(barrier_high) | np.isnan(cka_low), REGIMES[-1], labels)
