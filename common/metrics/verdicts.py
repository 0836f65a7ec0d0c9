"""Verdicts on the claims of every study: an estimate, its 95 % interval and TRUE / FALSE / UNDECIDED / TOO FEW SEEDS,
from procedures whose false-verdict rate under no true difference `bench/calibration.py` shows by simulation at the
seed counts the presets use. Pure functions, numpy arrays in, frozen results out. Every constructor also takes a
leading batch of experiments (arrays [..., K]): the calibration runs thousands of simulated experiments through the
very functions the reports call.

Procedures, one per kind of statistic:
- a difference of means over seeds: the paired t interval (`scipy.stats.ttest_rel`) when both sides share their
  seeds (a pruned member is its dense parent pruned; a ticket, its re-initialisation and its random mask share the
  seed), Welch's t interval (`ttest_ind(equal_var=False)`) when they do not, and the one-sample t interval
  (`ttest_1samp`) for a mean over seeds. The percentile bootstrap these replaced ignores that the spread itself is
  estimated from a handful of seeds: with no true difference it decided 33 %, 19 % and 12 % of the time at 2, 3
  and 5 seeds per side. The t distribution accounts for it; a studentised bootstrap would need tens of seeds to
  estimate its own pivot.
- a statistic of whole populations (PIE counts, their differences, Jaccard overlaps of PIE sets, modal-label
  agreement): the delete-one-seed jackknife standard error with a t critical value on K - 1 degrees of freedom.
  Written here because nothing in scipy resamples the members behind a modal label: `scipy.stats.jackknife_resampling`
  resamples one sample, whereas a PIE is defined by two or four populations that must lose the same seed at once
  (a pruned member is its dense parent pruned, and the two learning methods share seed numbers). The caller
  computes the statistic with seed s left out of every population (`leave_one_out`); block s drops seed s wherever
  it occurs. The jackknife needs no bias correction: the bootstrap's replicates hold ~0.67 K distinct members and
  so count too many PIEs, whereas the jackknife only uses the spread of its K leave-one-out values.
- a claim over several configurations: Holm's step-down rule across them (family-wise error <= 5 % under any
  dependence between configurations, which share dense populations and seeds); a configuration holds or fails
  only when Holm rejects it, and the claim "in most configurations" is TRUE when more than half hold, FALSE when
  at least half fail.
- no verdict without the seeds: below MIN_SEEDS per side the verdict is TOO FEW SEEDS and no interval is drawn.
- each result carries the smallest effect (distance from the threshold) that its test detects with 80 % power
  given the spread it measured: the non-central t power of the same two-sided test (`detectable`).
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95
POWER = 0.80
MIN_SEEDS = 3  # per side, for every procedure here (bench/calibration.py: the t intervals are exact from 2 on
# under normal spread, but a t on 1 degree of freedom is ±12.7 standard errors; the jackknife needs K >= 3)

TRUE, FALSE, UNDECIDED, TOO_FEW = "TRUE", "FALSE", "UNDECIDED", "TOO FEW SEEDS"
PAIRED, WELCH, ONE_SAMPLE, JACKKNIFE = "paired t", "Welch t", "one-sample t", "jackknife over seeds"


@dataclass(frozen=True)
class Inference:
    """A statistic (its value, standard error and t degrees of freedom: an interval's sufficient statistics) and
    the claim it is tested against: is it above (or below) `threshold`? Fields may be arrays of a batch of
    experiments; `n` is the number of seeds per side (one number for paired seeds)."""

    estimate: float | np.ndarray
    se: float | np.ndarray  # nan with too few seeds
    df: float | np.ndarray
    n: tuple
    procedure: str
    threshold: float = 0.0
    above: bool = True
    level: float = LEVEL

    @property
    def enough(self) -> bool:
        return min(self.n) >= MIN_SEEDS

    @property
    def _half_width(self):
        """t quantile x standard error; 0 where the seeds showed no spread at all (identical values: scipy's
        Welch gives no degrees of freedom then), nan with too few seeds."""
        with np.errstate(invalid="ignore"):
            return np.where(self.se == 0, 0.0, stats.t.ppf(0.5 + self.level / 2, self.df) * self.se)[()]

    @property
    def low(self):
        return self.estimate - self._half_width

    @property
    def high(self):
        return self.estimate + self._half_width

    @property
    def p_value(self):
        """Two-sided p-value of 'estimate = threshold' (1 with too few seeds: nothing is rejected)."""
        if not self.enough:
            return np.ones_like(np.asarray(self.estimate, dtype=float))[()]
        distance = np.abs(np.asarray(self.estimate, dtype=float) - self.threshold)
        with np.errstate(divide="ignore", invalid="ignore"):
            p = 2 * stats.t.sf(distance / self.se, self.df)
        return np.where(self.se > 0, p, np.where(distance > 0, 0.0, 1.0))[()]

    @property
    def verdict(self):
        """TRUE when the interval lies wholly on the claimed side of the threshold, FALSE when wholly on the other,
        UNDECIDED when it holds the threshold, TOO FEW SEEDS below MIN_SEEDS per side."""
        if not self.enough:
            return np.full(np.shape(self.estimate), TOO_FEW)[()]
        over, under = self.low > self.threshold, self.high < self.threshold
        claimed, other = (over, under) if self.above else (under, over)
        return np.where(claimed, TRUE, np.where(other, FALSE, UNDECIDED))[()]

    @property
    def decided(self):
        """True where the verdict is TRUE or FALSE (what the calibration counts under no true difference)."""
        return np.isin(self.verdict, (TRUE, FALSE))

    @property
    def detectable(self):
        """Smallest distance from the threshold this two-sided test detects with POWER, given the spread it
        measured (nan with too few seeds)."""
        if not self.enough:
            return np.full(np.shape(self.estimate), np.nan)[()]
        return (_detectable_shift(np.asarray(self.df, dtype=float), 1 - self.level) * self.se)[()]

    @property
    def seeds(self) -> str:
        """'3 vs 3 seeds', '3 paired seeds' or '5 seeds'."""
        return " vs ".join(str(k) for k in self.n) + (" paired seeds" if self.procedure == PAIRED else " seeds")

    def interval_text(self, digits: int = 0, scale: float = 1.0, unit: str = "", signed: bool = True) -> str:
        """'+41, 95 % CI [+25, +69]' (signed: a difference), '0.20, 95 % CI [0.12, 0.26]' (unsigned: a level), or
        the estimate alone with too few seeds."""
        form = f"{'+' if signed else ''}.{digits}f"
        value = f"{scale * float(self.estimate):{form}}{unit}"
        if not self.enough:
            return f"{value} (no interval)"
        return (f"{value}, {100 * self.level:.0f} % CI [{scale * float(self.low):{form}}, "
                f"{scale * float(self.high):{form}}]{unit}")

    def basis(self, digits: int = 0, scale: float = 1.0, unit: str = "") -> str:
        """The procedure, the seeds and what they could tell: 'paired t, 3 paired seeds; no effect larger than
        ±0.05 at 80 % power' (UNDECIDED), '…; detects ±0.05 at 80 % power' (decided), or '…: too few to tell,
        needs 3 per side'."""
        head = f"{self.procedure}, {self.seeds}"
        if not self.enough:
            return f"{head}: too few to tell, needs {MIN_SEEDS} per side"
        size = f"±{scale * float(self.detectable):.{digits}f}{unit}"
        if self.verdict == UNDECIDED:
            return f"{head}; no effect larger than {size} at {100 * POWER:.0f} % power"
        return f"{head}; detects {size} at {100 * POWER:.0f} % power"

    def as_columns(self, prefix: str) -> dict:
        """The columns a stage writes for this statistic: value, interval and what rebuilds it (`from_columns`)."""
        low, high = (float(v) if self.enough else float("nan") for v in (self.low, self.high))
        return {prefix: float(self.estimate), f"{prefix}_ci_low": low, f"{prefix}_ci_high": high,
                f"{prefix}_se": float(self.se), f"{prefix}_df": float(self.df),
                f"{prefix}_n": " ".join(str(k) for k in self.n), f"{prefix}_procedure": self.procedure}


def from_columns(row, prefix: str, threshold: float = 0.0, above: bool = True) -> Inference | None:
    """The Inference a stage wrote with `as_columns` (a dict or a table row read back from CSV, where '3' comes
    back as a number), tested against `threshold`; None when the row lacks it."""
    n = row.get(f"{prefix}_n")
    if f"{prefix}_se" not in row or n is None or (isinstance(n, float) and np.isnan(n)):
        return None
    return Inference(float(row[prefix]), float(row[f"{prefix}_se"]), float(row[f"{prefix}_df"]),
                     tuple(int(float(k)) for k in str(n).split()), row[f"{prefix}_procedure"], threshold, above)


# ---- differences of means over seeds ----------------------------------------------------------------------

def _from_scipy(result, estimate, n: tuple, procedure: str, threshold: float, above: bool) -> Inference:
    """An Inference from a scipy t-test result: its degrees of freedom, and the standard error read back from
    scipy's own confidence interval (a constant difference has a zero-width one: se 0)."""
    interval = result.confidence_interval(LEVEL)
    se = (np.asarray(interval.high) - np.asarray(interval.low)) / (2 * stats.t.ppf(0.5 + LEVEL / 2, result.df))
    return Inference(estimate[()], np.nan_to_num(se, nan=0.0)[()], np.asarray(result.df, dtype=float)[()], n,
                     procedure, threshold, above)


@contextmanager
def _quiet():
    """scipy on seeds with (nearly) no spread: a zero or lost variance is handled here (se 0), not an error."""
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Precision loss", category=RuntimeWarning)
        yield


def _too_few(estimate, n: tuple, procedure: str, threshold: float, above: bool) -> Inference:
    nan = np.full(np.shape(estimate), np.nan)[()]
    return Inference(np.asarray(estimate)[()], nan, nan, n, procedure, threshold, above)


def paired(a, b, threshold: float = 0.0, above: bool = True) -> Inference:
    """mean(a - b) over seeds shared by both sides: a[..., i] and b[..., i] come from seed i."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples need one value per seed on each side: shapes {a.shape} vs {b.shape}")
    estimate, n = (a - b).mean(-1), (a.shape[-1],)
    if n[0] < MIN_SEEDS:
        return _too_few(estimate, n, PAIRED, threshold, above)
    with _quiet():
        result = stats.ttest_rel(a, b, axis=-1)
    return _from_scipy(result, estimate, n, PAIRED, threshold, above)


def welch(a, b, threshold: float = 0.0, above: bool = True) -> Inference:
    """mean(a) - mean(b) over independent seeds (Welch's t: unequal spreads and sizes allowed)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    estimate, n = a.mean(-1) - b.mean(-1), (a.shape[-1], b.shape[-1])
    if min(n) < MIN_SEEDS:
        return _too_few(estimate, n, WELCH, threshold, above)
    with _quiet():
        result = stats.ttest_ind(a, b, equal_var=False, axis=-1)
    return _from_scipy(result, estimate, n, WELCH, threshold, above)


def one_sample(values, threshold: float = 0.0, above: bool = True) -> Inference:
    """mean(values) over seeds (a mean barrier of one cell, a depth gap of one population)."""
    values = np.asarray(values, dtype=float)
    estimate, n = values.mean(-1), (values.shape[-1],)
    if n[0] < MIN_SEEDS:
        return _too_few(estimate, n, ONE_SAMPLE, threshold, above)
    with _quiet():
        result = stats.ttest_1samp(values, 0.0, axis=-1)
    return _from_scipy(result, estimate, n, ONE_SAMPLE, threshold, above)


def seed_difference(a: dict, b: dict, threshold: float = 0.0, above: bool = True) -> Inference:
    """mean(a) - mean(b) for values keyed by seed: paired over the seeds both sides share when they share any
    (dropping the others: a seed measured on one side only has no partner), Welch's t when they share none."""
    shared = sorted(set(a) & set(b))
    if shared:
        return paired([a[s] for s in shared], [b[s] for s in shared], threshold, above)
    return welch(list(a.values()), list(b.values()), threshold, above)


# ---- statistics of whole populations ----------------------------------------------------------------------

def jackknife(estimate, leave_one_out, threshold: float = 0.0, above: bool = True, n: tuple | None = None
              ) -> Inference:
    """A population statistic `estimate` with its delete-one-seed jackknife standard error,
    sqrt((K - 1) / K * sum_s (theta_(s) - mean theta_(.))^2), on K - 1 degrees of freedom.

    leave_one_out[..., s]: the statistic recomputed with seed s dropped from every population it enters (both
    members of a dense/pruned pair, both learning methods). `n` (seeds per side) defaults to (K,)."""
    loo = np.asarray(leave_one_out, dtype=float)
    k = loo.shape[-1]
    n = (k,) if n is None else tuple(n)
    estimate = np.asarray(estimate, dtype=float)
    if min(min(n), k) < MIN_SEEDS:
        return _too_few(estimate, n, JACKKNIFE, threshold, above)
    se = np.sqrt((k - 1) / k * ((loo - loo.mean(-1, keepdims=True)) ** 2).sum(-1))
    return Inference(estimate[()], se[()], np.full(np.shape(se), k - 1.0)[()], n, JACKKNIFE, threshold, above)


def label_counts(preds: np.ndarray, num_classes: int) -> np.ndarray:
    """[..., N, C] votes for each label of the members preds [..., K, N]: one bincount over every column."""
    *lead, k, n = preds.shape
    flat = preds.reshape(-1, k, n)
    offsets = (np.arange(len(flat))[:, None, None] * n + np.arange(n)) * num_classes
    counts = np.bincount((flat + offsets).ravel(), minlength=len(flat) * n * num_classes)
    return counts.reshape(*lead, n, num_classes)


def leave_one_out_modal_labels(preds: np.ndarray, num_classes: int) -> np.ndarray:
    """[..., K, N]: row i is the modal label of preds [..., K, N] without member i (ties to the smallest label, as
    common.metrics.pies.modal_labels). One count table, then one subtraction per member."""
    counts = label_counts(preds, num_classes)
    classes = np.arange(num_classes)
    return np.stack([(counts - (preds[..., i, :, None] == classes)).argmax(-1) for i in range(preds.shape[-2])],
                    axis=-2)


def leave_one_out_pies(dense: np.ndarray, pruned: np.ndarray, num_classes: int, dense_seeds, pruned_seeds
                       ) -> tuple[list, np.ndarray]:
    """(seeds, masks [S, N]): the PIEs of the two populations (preds [K, N] of the members with those seeds) with
    seed s dropped from each population that has it, for every seed s of either; the blocks `jackknife` needs."""
    seeds = sorted(set(dense_seeds) | set(pruned_seeds))
    labels = []
    for preds, own in ((dense, list(dense_seeds)), (pruned, list(pruned_seeds))):
        full, without = modal_labels_of(preds, num_classes), leave_one_out_modal_labels(preds, num_classes)
        labels.append(np.stack([without[own.index(s)] if s in own else full for s in seeds]))
    return seeds, labels[0] != labels[1]


def modal_labels_of(preds: np.ndarray, num_classes: int) -> np.ndarray:
    """[..., N] modal label of preds [..., K, N], ties to the smallest label (common.metrics.pies.modal_labels,
    with a leading batch)."""
    return label_counts(preds, num_classes).argmax(-1)


# ---- several configurations ------------------------------------------------------------------------------

def holm(p_values, alpha: float = 1 - LEVEL) -> np.ndarray:
    """Holm's step-down rejections over the last axis: sort the m p-values, reject p_(i) while p_(i) <=
    alpha / (m - i + 1), stop at the first that is not. Family-wise error <= alpha under any dependence."""
    p = np.asarray(p_values, dtype=float)
    m = p.shape[-1]
    order = np.argsort(p, axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, -1)
    passes = np.cumprod(ranked <= alpha / (m - np.arange(m)), axis=-1).astype(bool)
    rejected = np.empty_like(passes)
    np.put_along_axis(rejected, order, passes, -1)
    return rejected


@dataclass(frozen=True)
class Tally:
    """A claim 'in most configurations …' over m configurations, each decided by Holm's rule across them."""

    holds: int | np.ndarray
    fails: int | np.ndarray
    undecided: int | np.ndarray
    too_few: int
    m: int
    detectable: tuple  # (smallest, largest) per-configuration detectable effect at Holm's strictest level

    RULE = "Holm across the configurations, 5 % family-wise"

    @property
    def verdict(self):
        if self.too_few == self.m:
            return np.full(np.shape(self.holds), TOO_FEW)[()]
        half = self.m / 2
        return np.where(self.holds > half, TRUE, np.where(self.fails >= half, FALSE, UNDECIDED))[()]

    def text(self) -> str:
        few = f", too few seeds in {self.too_few}" if self.too_few else ""
        return (f"holds in {self.holds}, fails in {self.fails}, undecided in {self.undecided}{few} of {self.m} "
                f"configurations ({self.RULE})")


def tally(results: list[Inference], alpha: float = 1 - LEVEL) -> Tally:
    """Each configuration's test (its Inference against the claim's threshold) under Holm's rule: it holds when
    rejected on the claimed side, fails when rejected on the other, else undecided. Configurations with too few
    seeds count as undecided (and are reported)."""
    m = len(results)
    p = np.stack([np.asarray(r.p_value, dtype=float) for r in results], -1)
    rejected = holm(p, alpha)
    side = np.stack([np.sign(np.asarray(r.estimate, dtype=float) - r.threshold) * (1 if r.above else -1)
                     for r in results], -1)
    holds, fails = (rejected & (side > 0)).sum(-1), (rejected & (side < 0)).sum(-1)
    enough = [r for r in results if r.enough]
    strict = [float(_detectable_shift(np.asarray(r.df, dtype=float), alpha / m) * r.se) for r in enough
              if np.ndim(r.se) == 0]
    return Tally(holds[()], fails[()], (m - holds - fails)[()], m - len(enough), m,
                 (min(strict), max(strict)) if strict else (np.nan, np.nan))


# ---- power ----------------------------------------------------------------------------------------------

def _power(noncentrality, df, alpha):
    critical = stats.t.ppf(1 - alpha / 2, df)
    return stats.nct.sf(critical, df, noncentrality) + stats.nct.cdf(-critical, df, noncentrality)


def _detectable_shift(df, alpha: float, power: float = POWER, steps: int = 60):
    """Non-centrality (in standard errors) at which the two-sided t test at `alpha` on `df` degrees of freedom
    rejects with probability `power`: bisection, vectorised over df."""
    low, high = np.zeros_like(df), np.full_like(df, 100.0)
    for _ in range(steps):
        mid = (low + high) / 2
        short = _power(mid, df, alpha) < power
        low, high = np.where(short, mid, low), np.where(short, high, mid)
    return (low + high) / 2
