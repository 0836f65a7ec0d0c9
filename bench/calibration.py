"""Calibration of every verdict procedure (common/metrics/verdicts.py): how often it decides (TRUE or FALSE) when there
is no true difference, and how often it finds a known one, at K = 2, 3, 5, 10 and 30 seeds per side.

Each kind of claim is simulated as the reports compute it, through the same functions, many experiments at once:
- means over seeds (tickets' accuracy gaps, Corti's Q-Score shift and depth gap, a three-regime cell's mean):
  per-seed values drawn from a normal distribution, or a skewed one (a centred exponential: a few seeds far off),
  with unequal spreads for Welch's t and a within-seed correlation of 0.5 for the paired t. Power at a true
  difference of one standard deviation of the per-seed values (of the per-seed differences when paired).
- PIE counts, their differences and Jaccard overlaps: populations of members predicting N test examples of a
  10-class task, from the generative model in `PieWorld` (per-example difficulty and susceptibility to pruning,
  per-member skill, pruned members that are their dense parent pruned). Under the null two learning methods (or
  two pruning schedules of one method) are drawn from one distribution; for power the second's pruning hurts
  more (`harm` x 1.5). A PIE count of one configuration and a Jaccard overlap have no zero to test: their
  false-verdict rate is how often the 95 % interval misses the statistic's expected value (the mean over many
  simulated experiments), i.e. a wrong verdict against a threshold placed exactly there.
- "in most configurations" over 12 configurations (2 learning methods x 6 pruned populations, each method's six
  sharing their dense parents): a paired t per configuration, Holm across them.
- the percentile bootstrap over members that these procedures replaced, on a difference of means, for reference.

Usage:  python bench/calibration.py                 # 1,000 experiments per cell, about 3 minutes on one core
        python bench/calibration.py --sims 400 --examples 1000 --ks 3 5
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common.metrics.verdicts import (MIN_SEEDS, TRUE, Inference, jackknife, leave_one_out_modal_labels,  # noqa: E402
                                     modal_labels_of, one_sample, paired, tally, welch)

KS = (2, 3, 5, 10, 30)
CLASSES = 10
CHUNK = 100  # experiments simulated at once: bounds memory at K = 30
REPLACED = "(replaced)"  # the procedure these replaced, for reference: it gives verdicts at any K


# ---- means over seeds ---------------------------------------------------------------------------------------

def seed_values(rng, sims: int, k: int, skewed: bool) -> np.ndarray:
    """[sims, k] per-seed values with mean 0 and sd 1: normal, or a centred exponential (skewed)."""
    return rng.exponential(1.0, (sims, k)) - 1.0 if skewed else rng.normal(0.0, 1.0, (sims, k))


def paired_claim(rng, sims: int, k: int, effect: float, skewed: bool = False) -> Inference:
    """Two sides measured on the same k seeds: b a seed's value, a the same plus a per-seed difference of sd 1
    (skewed when `skewed`), so the sides correlate 0.7 within a seed."""
    shared, difference = seed_values(rng, sims, k, False), seed_values(rng, sims, k, skewed)
    return paired(shared + difference + effect, shared)


def welch_claim(rng, sims: int, k: int, effect: float, skewed: bool = False) -> Inference:
    """Independent sides, sd 1 and 2 (the pooled-variance t would be wrong here); effect in units of sd 1."""
    return welch(seed_values(rng, sims, k, skewed) + effect, 2.0 * seed_values(rng, sims, k, skewed))


def one_sample_claim(rng, sims: int, k: int, effect: float, skewed: bool = False) -> Inference:
    return one_sample(seed_values(rng, sims, k, skewed) + effect)


def bootstrap_claim(rng, sims: int, k: int, effect: float, replicates: int = 1000) -> np.ndarray:
    """The replaced procedure, for reference: percentile bootstrap of mean(a) - mean(b), members resampled
    independently on each side, interval shifted by the bootstrap's bias; -> decided [sims]."""
    a, b = seed_values(rng, sims, k, False) + effect, seed_values(rng, sims, k, False)
    draw = lambda x: np.take_along_axis(x[:, None, :], rng.integers(0, k, (sims, replicates, k)), -1).mean(-1)  # noqa
    replicate = draw(a) - draw(b)
    estimate = a.mean(-1) - b.mean(-1)
    low, high = np.percentile(replicate, [2.5, 97.5], axis=-1) - (replicate.mean(-1) - estimate)
    return (low > 0) | (high < 0)


def pair_values(rng, sims: int, k: int, effect: float) -> tuple[np.ndarray, np.ndarray]:
    """A three-regime cell: the barriers of every pair of k re-training seeds, pair (a, b) = e_a + e_b + noise with
    seed effects e ~ N(0, 1) and noise ~ N(0, 1), plus `effect` (in sds of one pair's barrier, sqrt 3).
    -> ([sims, pairs] values, [pairs, 2] the seeds of each pair)."""
    members = np.array([(a, b) for a in range(k) for b in range(a + 1, k)]).reshape(-1, 2)
    seeds = rng.normal(0.0, 1.0, (sims, k))
    values = seeds[:, members[:, 0]] + seeds[:, members[:, 1]] + rng.normal(0.0, 1.0, (sims, len(members)))
    return values + effect * np.sqrt(3.0), members


def pairs_jackknife_claim(rng, sims: int, k: int, effect: float) -> Inference:
    """The cell's mean barrier with seed s left out (every pair that holds it dropped): the jackknife over seeds."""
    values, members = pair_values(rng, sims, k, effect)
    kept = np.stack([(members != s).all(1) for s in range(k)])  # [k, pairs]
    loo = values @ kept.T / np.maximum(kept.sum(1), 1)
    return jackknife(values.mean(-1), loo)


def pairs_naive_claim(rng, sims: int, k: int, effect: float) -> Inference:
    """The same mean by a one-sample t over pairs as if they were independent (they share seeds): for reference."""
    return one_sample(pair_values(rng, sims, k, effect)[0])


# ---- populations of members: PIE counts and overlaps ----------------------------------------------------------

@dataclass(frozen=True)
class PieWorld:
    """A test set of `examples` examples and how members of a population predict it.

    Example j has a true label y_j, a confusable class w_j != y_j, a difficulty a_j ~ N(mu, sd^2) on the logit
    scale and a susceptibility to pruning z_j ~ Exp(1). A dense member m is right on j with probability
    sigmoid(a_j + u_m), u_m ~ N(0, skill^2) (a member's skill: its errors correlate across examples, as a real
    member's do); when wrong it says w_j with probability `confusion`, else another wrong class at random. Its
    pruned child keeps the skill (plus N(0, skill^2) of its own), has its logit lowered by harm * z_j (pruning
    hurts a minority of examples much more than the rest) and reuses its parent's random draws on each example
    with probability `inherit` (it predicts like its parent where pruning changed little)."""

    examples: int = 2000
    mu: float = 3.0
    sd: float = 2.0
    skill: float = 0.3
    confusion: float = 0.6
    inherit: float = 0.7
    harm: float = 1.0

    def sample(self, rng) -> dict:
        n = self.examples
        labels = rng.integers(0, CLASSES, n)
        return dict(labels=labels, confusable=(labels + rng.integers(1, CLASSES, n)) % CLASSES,
                    difficulty=rng.normal(self.mu, self.sd, n), susceptibility=rng.exponential(1.0, n))

    def members(self, rng, test: dict, logits: np.ndarray, skill: np.ndarray, parent: tuple | None = None):
        """(preds [sims, k, n], the draws behind them) for members of the given skill [sims, k, 1]; a child
        reuses each of its parent's draws with probability `inherit`."""
        draws = tuple(rng.random(skill.shape[:2] + (self.examples,)) for _ in range(3))
        if parent is not None:
            keep = rng.random(draws[0].shape) < self.inherit
            draws = tuple(np.where(keep, old, new) for old, new in zip(parent, draws))
        right, confused, other = draws
        labels = test["labels"]
        wrong = np.where(confused < self.confusion, test["confusable"],
                         (labels + 1 + (other * (CLASSES - 1)).astype(int)) % CLASSES)
        correct = right < 1 / (1 + np.exp(-(logits + skill)))
        return np.where(correct, labels, wrong).astype(np.int8), draws

    def method(self, rng, test: dict, sims: int, k: int, harms: tuple) -> tuple:
        """A learning method's dense population and one pruned population per harm: preds [sims, k, n] each."""
        skill = rng.normal(0.0, self.skill, (sims, k, 1))
        dense, draws = self.members(rng, test, test["difficulty"], skill)
        pruned = [self.members(rng, test, test["difficulty"] - harm * test["susceptibility"],
                               skill + rng.normal(0.0, self.skill, (sims, k, 1)), draws)[0] for harm in harms]
        return dense, pruned


def modal_with_leave_one_out(preds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(modal labels [sims, n], with seed s left out [sims, k, n]) of a batch of populations preds [sims, k, n]."""
    return modal_labels_of(preds, CLASSES), leave_one_out_modal_labels(preds, CLASSES)


def pies_with_leave_one_out(dense: tuple, pruned: tuple) -> tuple[np.ndarray, np.ndarray]:
    """(full [sims, n], leave-one-out [sims, k, n]) PIE masks from two populations' `modal_with_leave_one_out`,
    seed s dropped from both in row s: what the PIE stage writes (common.metrics.verdicts.leave_one_out_pies)."""
    return dense[0] != pruned[0], dense[1] != pruned[1]


def jaccard(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    union = (a | b).sum(-1)
    return np.where(union > 0, (a & b).sum(-1) / np.maximum(union, 1), 0.0)


def draw_populations(world: PieWorld, rng, sims: int, k: int, effect: float) -> tuple[dict, dict]:
    """(test set, {(method, schedule): (dense preds, pruned preds)} [sims, k, n] each) of one batch of experiments:
    learning methods A and B, each a dense population and two pruned ones (two schedules) from the same parents,
    all pruned with `harm` except B's first, pruned with harm x (1 + effect)."""
    test = world.sample(np.random.default_rng(0))  # one test set for every experiment: its examples are fixed
    dense_a, pruned_a = world.method(rng, test, sims, k, (world.harm, world.harm))
    dense_b, pruned_b = world.method(rng, test, sims, k, (world.harm * (1 + effect), world.harm))
    return test, {("A", 1): (dense_a, pruned_a[0]), ("A", 2): (dense_a, pruned_a[1]),
                  ("B", 1): (dense_b, pruned_b[0]), ("B", 2): (dense_b, pruned_b[1])}


def population_claims(populations: dict) -> dict[str, Inference]:
    """The Inferences of every population claim of `draw_populations`'s experiments, as the report computes them
    (tests/test_verdicts.py checks that common.studies.corti2022.claims gives the same on the same populations):
    B1 - A1 PIEs (two methods), B1 - B2 PIEs (two schedules sharing their dense parents), A1's PIE count, and the
    mean Jaccard overlap of the pairs the report compares (A1-B1, A2-B2 across methods, A1-A2, B1-B2 across
    schedules); seed s is left out of every population at once."""
    modal = {method: modal_with_leave_one_out(populations[method, 1][0]) for method in "AB"}
    (a1, a1_loo), (a2, a2_loo), (b1, b1_loo), (b2, b2_loo) = (
        pies_with_leave_one_out(modal[method], modal_with_leave_one_out(populations[method, schedule][1]))
        for method, schedule in (("A", 1), ("A", 2), ("B", 1), ("B", 2)))
    count = lambda masks: masks.sum(-1).astype(float)  # noqa: E731
    overlap = lambda p, q, r, s: np.mean([jaccard(p, r), jaccard(q, s), jaccard(p, q), jaccard(r, s)], 0)  # noqa
    return {
        "pies": jackknife(count(a1), count(a1_loo)),
        "methods": jackknife(count(b1) - count(a1), count(b1_loo) - count(a1_loo)),
        "schedules": jackknife(count(b1) - count(b2), count(b1_loo) - count(b2_loo)),
        "jaccard": jackknife(overlap(a1, a2, b1, b2), overlap(a1_loo, a2_loo, b1_loo, b2_loo)),
    }


def pie_experiments(world: PieWorld, rng, sims: int, k: int, effect: float) -> dict:
    """One batch of experiments (`draw_populations`): their population claims (`population_claims`) and the
    accuracy of A's dense and first pruned populations."""
    test, populations = draw_populations(world, rng, sims, k, effect)
    dense, pruned = populations["A", 1]
    return {**population_claims(populations),
            "accuracy": (float((dense == test["labels"]).mean()), float((pruned == test["labels"]).mean()))}


# ---- several configurations -------------------------------------------------------------------------------

def majority_claim(rng, sims: int, k: int, effect: float, configurations: int = 12) -> np.ndarray:
    """'in most configurations pruning lowers X': per learning method, 6 pruned populations share their dense
    parents (a seed's dense value enters all six differences); a paired t per configuration, Holm across the
    12. -> the majority verdict [sims]."""
    results = []
    for _ in range(2):
        dense = rng.normal(0.0, 1.0, (sims, k))
        for _ in range(configurations // 2):
            pruned = 0.5 * dense + rng.normal(0.0, 1.0, (sims, k)) - effect * np.sqrt(0.25 + 1.0)
            results.append(paired(pruned, dense, 0.0, above=False))
    return tally(results).verdict


# ---- the table -------------------------------------------------------------------------------------------

def rate(decided) -> float:
    return 100.0 * float(np.mean(decided))


def mean_claims(rng, sims: int, k: int) -> list[tuple[str, float, float]]:
    rows = []
    for name, claim, skewed in (("difference of means, paired t (normal seeds)", paired_claim, False),
                                ("difference of means, paired t (skewed seeds)", paired_claim, True),
                                ("difference of means, Welch t (sd 1 vs 2)", welch_claim, False),
                                ("difference of means, Welch t (skewed seeds)", welch_claim, True),
                                ("mean over seeds, one-sample t (normal)", one_sample_claim, False)):
        null = claim(rng, sims, k, 0.0, skewed)
        rows.append((name, rate(null.decided), rate(claim(rng, sims, k, 1.0, skewed).verdict == TRUE)))
    for name, claim in (("mean over all pairs of K seeds, jackknife over seeds", pairs_jackknife_claim),
                        ("mean over all pairs of K seeds, one-sample t over pairs (pairs share seeds)",
                         pairs_naive_claim)):
        rows.append((name, rate(claim(rng, sims, k, 0.0).decided), rate(claim(rng, sims, k, 1.0).verdict == TRUE)))
    rows.append(("in most of 12 configurations, paired t + Holm", rate(np.isin(majority_claim(rng, sims, k, 0.0),
                                                                                ("TRUE", "FALSE"))),
                 rate(majority_claim(rng, sims, k, 1.0) == TRUE)))
    rows.append((f"difference of means, percentile bootstrap {REPLACED}", rate(bootstrap_claim(rng, sims, k, 0.0)),
                 rate(bootstrap_claim(rng, sims, k, 1.0))))
    return rows


def pie_claims(world: PieWorld, rng, sims: int, k: int, power: bool = True
               ) -> tuple[list[tuple[str, float, float]], dict]:
    """Null false-verdict rate and (unless not `power`) power of the population claims; the expected values come
    from the null experiments themselves (the mean over them)."""
    null = _batched(world, rng, sims, k, 0.0)
    alternative = _batched(world, rng, sims, k, 0.5) if power else None
    rows, facts = [], {}
    for key, name in (("methods", "PIE-count difference, two methods (jackknife)"),
                      ("schedules", "PIE-count difference, two schedules, shared dense (jackknife)")):
        found = rate(alternative[key].verdict == TRUE) if power else float("nan")
        rows.append((name, rate(null[key].decided), found))
        facts[key] = float(np.mean(alternative[key].estimate)) if power else float("nan")
    for key, name in (("pies", "PIE count of one configuration (jackknife)"),
                      ("jaccard", "mean Jaccard overlap of four pairs of PIE sets (jackknife)")):
        expected = float(np.mean(null[key].estimate))
        centred = _recentred(null[key], expected)
        rows.append((name, rate(centred.decided), float("nan")))
        facts[key] = expected
    facts["accuracy"] = null["accuracy"]
    return rows, facts


def _recentred(result: Inference, threshold: float) -> Inference:
    return Inference(result.estimate, result.se, result.df, result.n, result.procedure, threshold, True)


def _batched(world: PieWorld, rng, sims: int, k: int, effect: float) -> dict:
    """pie_experiments in chunks of CHUNK experiments, concatenated."""
    parts = [pie_experiments(world, rng, min(CHUNK, sims - start), k, effect) for start in range(0, sims, CHUNK)]
    merged = {"accuracy": tuple(np.mean([p["accuracy"][i] for p in parts]) for i in range(2))}
    for key in ("pies", "methods", "schedules", "jaccard"):
        first = parts[0][key]
        merged[key] = Inference(*(np.concatenate([np.atleast_1d(getattr(p[key], f)) for p in parts])
                                  for f in ("estimate", "se", "df")), first.n, first.procedure)
    return merged


def table(sims: int, ks=KS, world: PieWorld = PieWorld(), seed: int = 0, kinds=("means", "populations")
          ) -> tuple[str, dict]:
    rng = np.random.default_rng(seed)
    rows, facts = [], {}
    for k in ks:
        found = mean_claims(rng, sims, k) if "means" in kinds else []
        if "populations" in kinds:
            pie_rows, facts = pie_claims(world, rng, sims, k)
            found += pie_rows
        rows += [(name, k, null, power) for name, null, power in found]
    order = {name: i for i, name in enumerate(dict.fromkeys(r[0] for r in rows))}
    rows.sort(key=lambda r: (order[r[0]], r[1]))
    lines = ["| claim | K | null false-verdict rate | power |", "|---|---|---|---|"]
    lines += [f"| {name} | {k} | {_cell(null, name, k)} | {_cell(power, name, k)} |" for name, k, null, power in rows]
    return "\n".join(lines), facts


def _cell(value: float, name: str, k: int) -> str:
    """A rate in percent; below MIN_SEEDS the procedures here give no verdict, which the cell says."""
    if np.isnan(value):
        return "—"
    few = k < MIN_SEEDS and REPLACED not in name
    return f"{value:.1f} %" + (" (TOO FEW SEEDS)" if few else "")


def processor() -> str:
    """The processor model (Linux's /proc/cpuinfo), else what the platform module knows."""
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or platform.machine()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=1000, help="simulated experiments per claim, K and scenario")
    parser.add_argument("--examples", type=int, default=2000, help="test examples of the PIE model")
    parser.add_argument("--ks", type=int, nargs="*", default=list(KS), help="seeds per side")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kinds", nargs="*", default=["means", "populations"], choices=("means", "populations"),
                        help="means over seeds (and configurations), populations (PIE counts and overlaps)")
    args = parser.parse_args(argv)
    started = time.time()
    world = PieWorld(examples=args.examples)
    text, facts = table(args.sims, args.ks, world, args.seed, args.kinds)
    print(text)
    if "populations" not in args.kinds:
        return
    last = args.ks[-1]
    print(f"\n{args.sims} simulated experiments per cell; below {MIN_SEEDS} seeds per side every procedure reads TOO "
          f"FEW SEEDS (never a verdict). Null: no true difference; for a PIE count or a Jaccard overlap, the rate at "
          f"which the interval misses its expected value. Power, means: a true difference of one standard deviation "
          f"of the per-seed values (of the per-seed differences when paired; of one pair's value for pairs; in every "
          f"one of the 12 configurations). Power, PIE counts: the second method's (schedule's) pruning harm x 1.5, "
          f"on average {facts['methods']:+.0f} ({facts['schedules']:+.0f}) PIEs at K = {last} on "
          f"{facts['pies']:.0f} expected in one configuration. PIE model (bench/calibration.py, PieWorld): "
          f"{args.examples} test examples, 10 classes, dense accuracy {100 * facts['accuracy'][0]:.1f} %, pruned "
          f"{100 * facts['accuracy'][1]:.1f} %, mean Jaccard of the four pairs {facts['jaccard']:.2f} at K = {last}. "
          f"{processor()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {time.time() - started:.0f} s.")


if __name__ == "__main__":
    main()
