"""The paper's claims (../shared/docs/paper_recipe.md A.9), each a measured estimate with its 95 % interval, the
procedure and seeds behind it, the smallest effect it could detect, and a verdict (common.metrics.verdicts): TRUE
(the interval lies on the claimed side of the threshold), FALSE (on the other side), UNDECIDED (it holds the
threshold) or TOO FEW SEEDS.

Population statistics (PIE counts, their differences, Jaccard overlaps) use the delete-one-seed jackknife: the PIE
stage writes each configuration's PIE masks with seed s left out of its dense and pruned populations (a pruned
member is its dense parent pruned, so the seed is the unit), and a statistic over several configurations or both
learning methods drops seed s from all of them at once, block by block. Per-member means (Q-Score shift and its
excess on PIEs: paired t, a pruned member against its own dense parent; the dense depth gap: one-sample t) come
from the stages' summary columns. A claim over configurations ("in most configurations …") decides each
configuration under Holm's rule across them and states it beside the claim.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from common.metrics.verdicts import MIN_SEEDS, Inference, from_columns, jackknife, tally
from common.studies.corti2022.paths import CortiPaths

NAMES = {"supervised": "supervised", "supcon": "SupCon"}


def _claim(text: str, outcome: str) -> str:
    return f"- {text} — **{outcome}**"


def _tested(text: str, result: Inference, digits: int = 0, signed: bool = True) -> str:
    return _claim(f"{text} {result.interval_text(digits, signed=signed)} ({result.basis(digits)})",
                  str(result.verdict))


def leave_one_out(paths: CortiPaths, dataset: str, method: str, pruning: str, sparsity: float
                  ) -> tuple[dict, np.ndarray] | None:
    """({seed: PIE mask [N] with that seed left out}, full PIE mask [N]) written by the PIE stage, or None."""
    path = paths.pie_leave_one_out(dataset, method, pruning, sparsity)
    if not Path(path).is_file():
        return None
    with np.load(path) as npz:
        count = int(npz["examples"])
        masks = np.unpackbits(npz["packed"], axis=1, count=count).astype(bool)
        full = np.unpackbits(npz["full"], count=count).astype(bool)
        return dict(zip(npz["seeds"].tolist(), masks)), full


def blocks(configurations: list[tuple[dict, np.ndarray]]) -> tuple[list, np.ndarray, np.ndarray]:
    """(seeds, full [P, N], leave-one-out [S, P, N]) of P configurations: block s leaves seed s out of every one
    (a configuration without seed s keeps its full mask)."""
    seeds = sorted(set().union(*(loo for loo, _ in configurations)))
    full = np.stack([f for _, f in configurations])
    loo = np.stack([np.stack([masks.get(s, f) for masks, f in configurations]) for s in seeds])
    return seeds, full, loo


def count_difference(paths: CortiPaths, dataset: str, first: tuple, second: tuple) -> Inference | None:
    """PIEs(first) - PIEs(second), each (method, pruning, sparsity), by the jackknife over seeds."""
    found = [leave_one_out(paths, dataset, *key) for key in (first, second)]
    if any(f is None for f in found):
        return None
    _, full, loo = blocks(found)
    sizes = tuple(len(masks) for masks, _ in found)
    difference = lambda masks: masks[..., 0, :].sum(-1) - masks[..., 1, :].sum(-1)  # noqa: E731
    return jackknife(difference(full), difference(loo), 0.0, True, sizes if first[0] != second[0] else sizes[:1])


def pie_count_claims(paths: CortiPaths, dataset: str, pies: dict[str, pd.DataFrame]) -> list[str]:
    lines = []
    sup, con = pies.get("supervised", pd.DataFrame()), pies.get("supcon", pd.DataFrame())
    if not sup.empty and not con.empty:
        both = sup.merge(con, on=["pruning", "sparsity"], suffixes=("_sup", "_con"))
        for pruning, part in both.groupby("pruning"):
            top = part.sort_values("sparsity").iloc[-1]
            diff = count_difference(paths, dataset, ("supcon", pruning, top.sparsity),
                                    ("supervised", pruning, top.sparsity))
            text = (f"at {top.sparsity:g} sparsity ({pruning}) SupCon has more PIEs than supervised: "
                    f"{int(top.pies_con)} vs {int(top.pies_sup)}")
            lines.append(_with_interval(text, diff))
    if not con.empty and {"gmp_early", "gmp_late"} <= set(con["pruning"]):
        early, late = con[con.pruning == "gmp_early"], con[con.pruning == "gmp_late"]
        shared = sorted(set(early.sparsity) & set(late.sparsity))
        if shared:
            s = shared[-1]
            e, lt = int(early[early.sparsity == s].pies.iloc[0]), int(late[late.sparsity == s].pies.iloc[0])
            diff = count_difference(paths, dataset, ("supcon", "gmp_early", s), ("supcon", "gmp_late", s))
            lines.append(_with_interval(f"pruning early hurts SupCon most: at {s:g} sparsity early GMP gives {e} "
                                        f"PIEs, late GMP {lt}", diff))
    return lines


def _with_interval(text: str, diff: Inference | None) -> str:
    if diff is None:
        return _claim(f"{text} (no leave-one-seed-out PIE masks on disk: rerun the PIE stage)", "UNDECIDED")
    return _tested(f"{text}; difference", diff)


def jaccard(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a & b| / |a | b| over the last axis (0 when both are empty)."""
    union = (a | b).sum(-1)
    return np.where(union > 0, (a & b).sum(-1) / np.maximum(union, 1), 0.0)


def jaccard_claim(paths: CortiPaths, dataset: str, comparison: pd.DataFrame, overlaps: dict) -> list[str]:
    """Mean Jaccard overlap over every compared pair of PIE sets, by the jackknife over seeds; claimed < 0.5."""
    pairs = [(("supervised", r.pruning, r.sparsity), ("supcon", r.pruning, r.sparsity))
             for r in comparison.itertuples()] if not comparison.empty else []
    for method, table in overlaps.items():
        if not table.empty:
            pairs += [((method, r.a, r.sparsity), (method, r.b, r.sparsity)) for r in table.itertuples()]
    if not pairs:
        return []
    keys = list(dict.fromkeys(key for pair in pairs for key in pair))
    found = {key: leave_one_out(paths, dataset, *key) for key in keys}
    text = f"PIEs are largely unique to a (learning, pruning) pair: mean Jaccard overlap over {len(pairs)} pairs"
    if any(f is None for f in found.values()):
        return [_claim(f"{text} (leave-one-seed-out PIE masks missing for some pairs: rerun the PIE stage)",
                       "UNDECIDED")]
    _, full, loo = blocks([found[key] for key in keys])
    index = {key: i for i, key in enumerate(keys)}
    mean = lambda masks: np.mean([jaccard(masks[..., index[a], :], masks[..., index[b], :])  # noqa: E731
                                  for a, b in pairs], axis=0)
    result = jackknife(mean(full), mean(loo), 0.5, above=False, n=(len(loo),))
    return [_tested(f"{text} ('largely unique' read as < 0.5):", result, 2, signed=False)]


def majority_claim(text: str, frame: pd.DataFrame, column: str, threshold: float, above: bool,
                   digits: int = 3) -> list[str]:
    """'in most configurations': each configuration's test (written by its stage, see `from_columns`) under
    Holm's rule across the configurations."""
    results = [r for r in (from_columns(row, column, threshold, above) for row in frame.to_dict("records"))
               if r is not None]
    if not results:
        return []
    counted = tally(results)
    seeds = ", ".join(sorted({r.seeds for r in results}))
    low, high = counted.detectable
    power = f"too few to tell, needs {MIN_SEEDS} per side" if np.isnan(low) else \
        f"each configuration detects ±{low:.{digits}f}–{high:.{digits}f} at 80 % power under Holm"
    return [_claim(f"{text}: {counted.text()}; {results[0].procedure} per configuration, {seeds}: {power}",
                   str(counted.verdict))]


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
                                "depth_dense_gap", 0.0, above=True, digits=2)
    return lines or ["- no claim can be checked: run the PIE stage on both learning methods first"]
