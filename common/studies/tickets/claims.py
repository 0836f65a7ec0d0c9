"""Caron et al. 2020's claims as measured statements: each a difference of mean accuracies over seeds at the deepest
level both sides reached, its 95 % interval over seeds (common.metrics.verdicts: the paired t over the seeds both
sides share, since a ticket, its re-initialisation, its random masks, a dense network and its pruned levels are
trained from the same seed; Welch's t when they share none) and a verdict (TRUE when the whole interval lies on the
claimed side of the threshold, FALSE when it lies wholly on the other, UNDECIDED when it straddles it, TOO FEW SEEDS
below 3 per side), with the smallest difference it detects at 80 % power. Tables in, rows out.

"Comparable" is read as "not worse by more than MARGIN" (1 percentage point): the paper states no margin.
The report assumes one --pruning_rate per output root: a level names one density."""
from __future__ import annotations

import numpy as np
import pandas as pd

from common.metrics.verdicts import seed_difference
from common.studies.tickets.config import objective_of
from common.engine.objectives import METHODS

MARGIN = 0.01
MODERATE_DENSITY = 0.1  # "a wide range of pruning rates": transfer is claimed kept down to 10 % of the weights


def self_supervised(tags) -> list[str]:
    """The objective tags (as tables carry them) of the objectives that see no label."""
    return [t for t in dict.fromkeys(tags) if METHODS[objective_of(t)].labels == "none"]


def difference(claim: str, a: pd.DataFrame, b: pd.DataFrame, threshold: float, above: bool, what: str,
               value: str = "test_accuracy") -> dict:
    """mean(a[value]) - mean(b[value]) over seeds with its interval and verdict; a, b: one row per seed (column
    `seed`, by which the two sides are paired)."""
    by_seed = lambda frame: dict(zip(frame["seed"], frame[value].to_numpy(float)))  # noqa: E731
    result = seed_difference(by_seed(a), by_seed(b), threshold, above)
    low, high = (float(v) if result.enough else float("nan") for v in (result.low, result.high))
    return dict(claim=claim, measured=what, difference=float(result.estimate), low=low, high=high,
                threshold=threshold, verdict=str(result.verdict), seeds=result.seeds, procedure=result.procedure,
                detectable=float(result.detectable))


def tickets_at(summary: pd.DataFrame, objective: str, source: str, init: str, level: int) -> pd.DataFrame:
    return summary[(summary["objective"] == objective) & (summary["mask_source"] == source)
                   & (summary["init"] == init) & (summary["level"] == level)]


def deepest_common(summary: pd.DataFrame, *selections: tuple) -> int | None:
    """The deepest level > 0 every (objective, source, init) selection reached."""
    levels = [set(summary[(summary["objective"] == o) & (summary["mask_source"] == s) & (summary["init"] == i)
                          & (summary["level"] > 0)]["level"]) for o, s, i in selections]
    common = set.intersection(*levels) if levels else set()
    return max(common) if common else None


def ticket_claims(summary: pd.DataFrame, reference: str = "supervised") -> list[dict]:
    """Figure 3's claims, per self-supervised objective, on the tickets of every layer (layers == 0)."""
    rows = []
    full = summary[summary["layers"] == 0]
    for tag in self_supervised(full["objective"]):
        checks = (
            # the paper's random baseline is corrected for natural sparsity (§4.3)
            ("self-supervised masks beat random masks (both re-initialised)", (tag, "imp", "reinit"),
             (tag, "random_natural", "reinit"), 0.0, True),
            ("with re-initialisation, self-supervised masks match label masks", (tag, "imp", "reinit"),
             (reference, "imp", "reinit"), -MARGIN, True),
            ("winning-ticket initialisations from self-supervision are worse than from labels", (tag, "imp", "rewind"),
             (reference, "imp", "rewind"), 0.0, False),
        )
        for claim, a, b, threshold, above in checks:
            level = deepest_common(full, a, b)
            if level is None:
                continue
            what = (f"{a[0]} {a[1]}/{a[2]} − {b[0]} {b[1]}/{b[2]}, level {level} "
                    f"({100 * tickets_at(full, *a, level)['density'].mean():.1f} % remaining)")
            rows.append(difference(claim, tickets_at(full, *a, level), tickets_at(full, *b, level), threshold, above,
                                   what))
    return rows


def layerwise_gaps(summary: pd.DataFrame, reference: str = "supervised") -> pd.DataFrame:
    """Per self-supervised objective and pruned depth (layers; 0 = every layer, shown as the pool's size by the
    plot): the winning-ticket gap, reference minus objective, at the deepest level of that depth, with its
    interval. One row per (objective, layers, level)."""
    rows = []
    for tag in self_supervised(summary["objective"]):
        for layers in sorted(set(summary["layers"])):
            part = summary[summary["layers"] == layers]
            level = deepest_common(part, (tag, "imp", "rewind"), (reference, "imp", "rewind"))
            if level is None:
                continue
            row = difference("gap", tickets_at(part, reference, "imp", "rewind", level),
                             tickets_at(part, tag, "imp", "rewind", level), 0.0, True, "")
            rows.append(dict(objective=tag, layers=layers, level=level, gap=row["difference"], low=row["low"],
                             high=row["high"]))
    return pd.DataFrame(rows)


def layerwise_claims(summary: pd.DataFrame, pool_size: int, reference: str = "supervised") -> list[dict]:
    """Figure 4's claim: the gap is wider when deeper layers are pruned too (every layer against the shallowest
    depth measured), at the same level."""
    rows = []
    for tag in self_supervised(summary["objective"]):
        depths = sorted(set(summary["layers"]) - {0})
        if not depths or 0 not in set(summary["layers"]):
            continue
        shallow = depths[0]
        level = min(deepest_common(summary[summary["layers"] == d], (tag, "imp", "rewind"),
                                   (reference, "imp", "rewind")) or 0 for d in (0, shallow))
        if not level:
            continue
        deep, few = (summary[summary["layers"] == d] for d in (0, shallow))
        a = _paired_gap(deep, reference, tag, level)
        b = _paired_gap(few, reference, tag, level)
        if a.empty or b.empty:  # no seed has both tickets at that level
            continue
        rows.append(difference("the gap to label tickets grows with the depth pruned", a, b, 0.0, True,
                               f"gap({pool_size} layers) − gap(first {shallow}), level {level}", value="gap"))
    return rows


def _paired_gap(part: pd.DataFrame, reference: str, tag: str, level: int) -> pd.DataFrame:
    """Per seed: reference's winning-ticket accuracy minus the objective's, at one level."""
    ref = tickets_at(part, reference, "imp", "rewind", level).set_index("seed")["test_accuracy"]
    own = tickets_at(part, tag, "imp", "rewind", level).set_index("seed")["test_accuracy"]
    return (ref - own).dropna().rename("gap").reset_index()


def supervision_claims(summary: pd.DataFrame) -> list[dict]:
    """Figure 5's claim: adding a labelled fraction to RotNet (S4L), or pruning on that fraction alone, gives
    better winning tickets than RotNet without labels."""
    full = summary[summary["layers"] == 0]
    tags = list(dict.fromkeys(full["objective"]))
    rows = []
    for tag in (t for t in tags if objective_of(t) in ("s4l", "few_labels")):
        if "rotnet" not in tags:
            continue
        level = deepest_common(full, (tag, "imp", "rewind"), ("rotnet", "imp", "rewind"))
        if level is None:
            continue
        rows.append(difference("a little supervision improves on RotNet's winning tickets",
                               tickets_at(full, tag, "imp", "rewind", level),
                               tickets_at(full, "rotnet", "imp", "rewind", level), 0.0, True,
                               f"{tag} − rotnet imp/rewind, level {level}"))
    return rows


def transfer_claims(probes: pd.DataFrame) -> list[dict]:
    """Figure 1's claim: the last stage's probe accuracy at the deepest level with at least MODERATE_DENSITY of the
    weights is within MARGIN of the dense network's, per objective and probe dataset (the paper expects severely
    pruned features to lose accuracy)."""
    rows = []
    last = probes[probes["stage"] == probes["stage"].max()]
    for (tag, dataset), part in last.groupby(["objective", "probe_dataset"], sort=False):
        deepest = part[part["density"] >= MODERATE_DENSITY - 1e-9]["level"].max()
        if not deepest:
            continue
        a, b = part[part["level"] == deepest], part[part["level"] == 0]
        rows.append(difference("pruned features keep their transfer accuracy", a, b, -MARGIN, True,
                               f"{tag} on {dataset}, stage {int(part['stage'].max())}: "
                               f"{100 * a['density'].mean():.1f} % − dense", value="accuracy"))
    return rows


def pruning_time_claims(finetunes: pd.DataFrame) -> list[dict]:
    """Figure 2's claim: finetuning a network pruned during pre-training beats pruning it during the finetuning,
    at the deepest level both reached."""
    rows = []
    for (tag, _), part in finetunes.groupby(["objective", "dataset"], sort=False):
        levels = set(part[part["pruned"] == "imp"]["level"]) & set(part[part["pruned"] == "transfer_gmp"]["level"])
        if not levels:
            continue
        level = max(levels)
        at = part[part["level"] == level]
        rows.append(difference("pruning during pre-training transfers better than pruning during transfer",
                               at[at["pruned"] == "imp"], at[at["pruned"] == "transfer_gmp"], 0.0, True,
                               f"{tag}: finetuned on {at['dataset'].iloc[0]}, level {level} "
                               f"({100 * at['density'].mean():.1f} % remaining)"))
    return rows


def claims_table(rows: list[dict]) -> pd.DataFrame:
    columns = ["claim", "measured", "difference", "low", "high", "threshold", "verdict", "seeds", "procedure",
               "detectable"]
    return pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame(columns=columns)


def percent(value: float) -> str:
    return "—" if value is None or np.isnan(value) else f"{100 * value:+.1f}"
