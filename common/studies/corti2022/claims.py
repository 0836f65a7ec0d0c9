"""The paper's claims (../shared/docs/paper_recipe.md A.9), each as a measured estimate with its 95 % interval from
the bootstrap over population members that the stages wrote (common.metrics.bootstrap), and a verdict: TRUE (the
interval lies on the claimed side of the threshold), FALSE (on the other side) or UNDECIDED (it straddles it).

PIE counts and their differences combine the replicate masks of the PIE stage replicate by replicate (the dense
population is resampled alike in every configuration of a learning method; the two methods independently). A
claim over configurations ("in most configurations …") counts the configurations whose own interval decides
each way: its count lies between the decided ones and the decided plus the undecided ones, and the verdict
compares that range with half the configurations.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from common.metrics.bootstrap import interval, verdict
from common.studies.corti2022.paths import CortiPaths

NAMES = {"supervised": "supervised", "supcon": "SupCon"}


def _claim(text: str, outcome: str) -> str:
    return f"- {text} — **{outcome}**"


def _ci(low: float, high: float, digits: int = 0) -> str:
    return f"95 % CI [{low:.{digits}f}, {high:.{digits}f}]"


def replicate_masks(paths: CortiPaths, dataset: str, method: str, pruning: str, sparsity: float) -> np.ndarray | None:
    """[B, N] PIE masks of the bootstrap replicates written by the PIE stage, or None."""
    path = paths.pie_bootstrap(dataset, method, pruning, sparsity)
    if not Path(path).is_file():
        return None
    with np.load(path) as npz:
        return np.unpackbits(npz["packed"], axis=1, count=int(npz["examples"])).astype(bool)


def count_difference(paths: CortiPaths, dataset: str, first: tuple, second: tuple) -> tuple | None:
    """(estimate, low, high) of PIEs(first) - PIEs(second), each (method, pruning, sparsity, point count)."""
    masks = [replicate_masks(paths, dataset, *key[:3]) for key in (first, second)]
    if any(m is None for m in masks) or len(masks[0]) != len(masks[1]):
        return None
    estimate = first[3] - second[3]
    return (estimate, *interval(masks[0].sum(1) - masks[1].sum(1), estimate))


def pie_count_claims(paths: CortiPaths, dataset: str, pies: dict[str, pd.DataFrame]) -> list[str]:
    lines = []
    sup, con = pies.get("supervised", pd.DataFrame()), pies.get("supcon", pd.DataFrame())
    if not sup.empty and not con.empty:
        both = sup.merge(con, on=["pruning", "sparsity"], suffixes=("_sup", "_con"))
        for pruning, part in both.groupby("pruning"):
            top = part.sort_values("sparsity").iloc[-1]
            diff = count_difference(paths, dataset, ("supcon", pruning, top.sparsity, top.pies_con),
                                    ("supervised", pruning, top.sparsity, top.pies_sup))
            text = (f"at {top.sparsity:g} sparsity ({pruning}) SupCon has more PIEs than supervised: "
                    f"{int(top.pies_con)} vs {int(top.pies_sup)}")
            lines.append(_with_interval(text, diff, 0.0))
    if not con.empty and {"gmp_early", "gmp_late"} <= set(con["pruning"]):
        early, late = con[con.pruning == "gmp_early"], con[con.pruning == "gmp_late"]
        shared = sorted(set(early.sparsity) & set(late.sparsity))
        if shared:
            s = shared[-1]
            e, lt = int(early[early.sparsity == s].pies.iloc[0]), int(late[late.sparsity == s].pies.iloc[0])
            diff = count_difference(paths, dataset, ("supcon", "gmp_early", s, e), ("supcon", "gmp_late", s, lt))
            lines.append(_with_interval(f"pruning early hurts SupCon most: at {s:g} sparsity early GMP gives {e} "
                                        f"PIEs, late GMP {lt}", diff, 0.0))
    return lines


def _with_interval(text: str, diff: tuple | None, threshold: float) -> str:
    if diff is None:
        return _claim(f"{text} (no bootstrap replicates on disk: rerun the PIE stage)", "UNDECIDED")
    estimate, low, high = diff
    return _claim(f"{text}; difference {estimate:+.0f}, {_ci(low, high)}", verdict(low, high, threshold))


def jaccard_claim(paths: CortiPaths, dataset: str, comparison: pd.DataFrame, overlaps: dict) -> list[str]:
    """Mean Jaccard overlap over every compared pair of PIE sets, replicate by replicate; claimed < 0.5."""
    pairs = [(("supervised", r.pruning, r.sparsity), ("supcon", r.pruning, r.sparsity))
             for r in comparison.itertuples()] if not comparison.empty else []
    for method, table in overlaps.items():
        if not table.empty:
            pairs += [((method, r.a, r.sparsity), (method, r.b, r.sparsity)) for r in table.itertuples()]
    if not pairs:
        return []
    replicates, points = [], []
    for a, b in pairs:
        ma, mb = replicate_masks(paths, dataset, *a), replicate_masks(paths, dataset, *b)
        if ma is None or mb is None or len(ma) != len(mb):
            continue
        union = (ma | mb).sum(1)
        replicates.append(np.where(union > 0, (ma & mb).sum(1) / np.maximum(union, 1), 0.0))
    frames = [t for t in [comparison, *overlaps.values()] if not t.empty and "jaccard" in t]
    points = pd.concat(frames, ignore_index=True)["jaccard"].dropna()
    text = (f"PIEs are largely unique to a (learning, pruning) pair: mean Jaccard overlap {points.mean():.2f} over "
            f"{len(points)} pairs ('largely unique' read as < 0.5)")
    if len(replicates) != len(pairs):
        return [_claim(f"{text} (bootstrap replicates missing for some pairs: rerun the PIE stage)", "UNDECIDED")]
    low, high = interval(np.mean(replicates, axis=0), points.mean())
    return [_claim(f"{text}; {_ci(low, high, 2)}", verdict(low, high, 0.5, above=False))]


def majority_claim(text: str, frame: pd.DataFrame, column: str, threshold: float, above: bool) -> list[str]:
    """'in most configurations': each configuration's interval (column_ci_low/high) decides it or not."""
    rows = frame.dropna(subset=[f"{column}_ci_low", f"{column}_ci_high"]) if f"{column}_ci_low" in frame else \
        frame.iloc[0:0]
    if rows.empty:
        return []
    outcomes = [verdict(r[f"{column}_ci_low"], r[f"{column}_ci_high"], threshold, above) for _, r in rows.iterrows()]
    yes, no, open_ = (outcomes.count(v) for v in ("TRUE", "FALSE", "UNDECIDED"))
    half = len(outcomes) / 2
    outcome = "TRUE" if yes > half else ("FALSE" if yes + open_ <= half else "UNDECIDED")
    return [_claim(f"{text}: holds in {yes}, fails in {no}, undecided in {open_} of {len(outcomes)} configurations "
                   f"(each by its 95 % interval over members)", outcome)]


def check_claims(paths: CortiPaths, dataset: str, pies: dict[str, pd.DataFrame], comparison: pd.DataFrame,
                 overlaps: dict[str, pd.DataFrame], depth: pd.DataFrame) -> list[str]:
    summaries = pd.concat([s for s in pies.values() if not s.empty], ignore_index=True) \
        if any(not s.empty for s in pies.values()) else pd.DataFrame()
    lines = pie_count_claims(paths, dataset, pies) + jaccard_claim(paths, dataset, comparison, overlaps)
    if not summaries.empty:
        lines += majority_claim("pruning lowers the mean Q-Score (points below the identity line)", summaries,
                                "q_score_shift", 0.0, above=False)
        lines += majority_claim("the Q-Score drops more for PIEs than for the rest", summaries,
                                "q_score_pie_excess", 0.0, above=False)
    if not depth.empty:
        lines += majority_claim("PIEs have a higher prediction depth than the rest (dense populations)", depth,
                                "depth_dense_gap", 0.0, above=True)
    return lines or ["- no claim can be checked: run the PIE stage on both learning methods first"]
