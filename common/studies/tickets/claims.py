"""Caron et al. 2020's claims as measured statements. Tables in, rows out.

Every claim compares two kinds of model that share their seeds (a seed fixes a ticket's data order, its random
mask and its re-initialisation, whatever the variant), so it is read on the per-seed differences: their mean, a
95 % paired t interval over the seeds both sides share and a verdict, all from common.metrics.verdicts
(`seed_difference`, the one inference path of every study, whose false-verdict rate bench/calibration.py
simulates): TRUE when the whole interval lies on the claimed side of the threshold, FALSE when it lies wholly on
the other side, UNDECIDED when it straddles it, TOO FEW SEEDS below 3 pairs (no interval then, never a zero-width
one), with the smallest difference it detects at 80 % power. A claim of equality ("≈", "match") reads the same
interval: TRUE when it lies wholly within ±MARGIN, FALSE when wholly outside, UNDECIDED otherwise (`verdict_of`).

Head start. A ticket-vs-ticket claim at level L is also read relative to the same comparison at level 0, the dense
networks: per seed, (a_L - b_L) - (a_0 - b_0). A winning ticket of the label objectives starts from a rewind point
whose label head is trained (a pretext's is not), so label tickets can lead at every density for that reason
alone; the relative reading asks whether pruning widened the gap. Where both sides' level 0 is the same model (a
re-initialised dense network is the shared random control at density 1), the two readings coincide.

"Comparable" is read as "within MARGIN" (1 percentage point): the paper states no margin. Every ticket claim is
measured at the deepest re-trained level both sides reached. The report assumes one --pruning_rate per output root:
a level names one density."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from common.metrics.verdicts import FALSE, TRUE, UNDECIDED, Inference, seed_difference
from common.studies.tickets.config import objective_of
from common.engine.objectives import METHODS

MARGIN = 0.01
MODERATE_DENSITY = 0.1  # "a wide range of pruning rates": transfer is claimed kept down to 10 % of the weights
SHARED = "shared"  # the objective column of the random controls every objective shares (retrain.SHARED)
REFERENCE = "supervised"


@dataclass(frozen=True)
class Side:
    """One kind of re-trained ticket: the objective that found the mask, the mask source and the initialisation."""

    objective: str
    source: str
    init: str

    def __str__(self) -> str:
        return f"{self.objective} {self.source}/{self.init}" if self.objective != SHARED \
            else f"{self.source} mask/{self.init}"


def by_seed(a: pd.Series, b: pd.Series, threshold: float, kind: str) -> Inference:
    """a - b (values indexed by seed) over the seeds both sides have: common.metrics.verdicts.seed_difference, the
    paired t. kind 'above' (the difference exceeds threshold), 'below' or 'within' (|difference| < threshold)."""
    return seed_difference(a.dropna().to_dict(), b.dropna().to_dict(), threshold, above=kind != "below")


def verdict_of(result: Inference, kind: str):
    """The verdict of `result` for a claim of `kind`: Inference.verdict for 'above' and 'below'; for 'within' its
    interval against ±threshold (TOO FEW SEEDS as Inference says). Vectorised over a batch of results."""
    if kind != "within" or not result.enough:
        return result.verdict
    margin = abs(result.threshold)
    inside = (result.low > -margin) & (result.high < margin)
    outside = (result.low > margin) | (result.high < -margin)
    return np.where(inside, TRUE, np.where(outside, FALSE, UNDECIDED))[()]


def judged(result: Inference, kind: str, prefix: str = "") -> dict:
    """A claim's columns (keys prefixed, e.g. 'relative_'): estimate, the 95 % interval (NaN with too few seeds),
    n (seeds per side), the procedure, the effect detectable at 80 % power and the verdict."""
    low, high = (float(v) if result.enough else float("nan") for v in (result.low, result.high))
    row = dict(estimate=float(result.estimate), low=low, high=high, n=" vs ".join(map(str, result.n)),
               procedure=result.procedure, detectable=float(result.detectable), verdict=str(verdict_of(result, kind)))
    return {f"{prefix}{key}": value for key, value in row.items()}


def accuracies(summary: pd.DataFrame, side: Side, level: int) -> pd.Series:
    """Test accuracy per seed of one kind of ticket at one level. IMP's re-initialised level 0 is the dense network
    from a random initialisation: the shared random control at density 1."""
    if side.init == "reinit" and level == 0:
        side = Side(SHARED, "random", "reinit")
    rows = summary[(summary["objective"] == side.objective) & (summary["mask_source"] == side.source)
                   & (summary["init"] == side.init) & (summary["level"] == level)]
    return rows.set_index("seed")["test_accuracy"]


def levels_of(summary: pd.DataFrame, side: Side) -> set[int]:
    part = summary[(summary["objective"] == side.objective) & (summary["mask_source"] == side.source)
                   & (summary["init"] == side.init)]
    return set(part["level"])


def deepest_common(summary: pd.DataFrame, *sides: Side) -> int | None:
    """The deepest level > 0 every side reached."""
    common = set.intersection(*(levels_of(summary, s) for s in sides)) - {0}
    return max(common) if common else None


def ticket_claim(summary: pd.DataFrame, claim: str, a: Side, b: Side, kind: str, threshold: float = 0.0,
                 level: int | None = None) -> dict | None:
    """a - b at the deepest level both reached (or `level`), raw and relative to the level-0 gap, per seed."""
    level = deepest_common(summary, a, b) if level is None else level
    if level is None:
        return None
    a_at, b_at = accuracies(summary, a, level), accuracies(summary, b, level)
    a_dense, b_dense = accuracies(summary, a, 0), accuracies(summary, b, 0)
    head = (a_dense - b_dense).dropna()
    density = summary[summary["level"] == level]["density"].mean()
    # relative to level 0, per seed: (a_L - a_0) - (b_L - b_0) = (a_L - b_L) - (a_0 - b_0)
    return dict(claim=claim, measured=f"{a} − {b}", level=level, density=density, threshold=threshold, kind=kind,
                head_start=float(head.mean()) if len(head) else float("nan"),
                **judged(by_seed(a_at, b_at, threshold, kind), kind),
                **judged(by_seed(a_at - a_dense, b_at - b_dense, threshold, kind), kind, "relative_"))


def self_supervised(tags) -> list[str]:
    """The objective tags (as tables carry them) of the objectives that see no label."""
    return [t for t in dict.fromkeys(tags) if t != SHARED and METHODS[objective_of(t)].labels == "none"]


def random_baseline(summary: pd.DataFrame, tag: str) -> Side:
    """The paper's random baseline is corrected for natural sparsity (§4.3): that control where it was trained,
    the plain random mask otherwise (at this scale they differ by a few weights: README)."""
    natural = Side(tag, "random_natural", "reinit")
    return natural if levels_of(summary, natural) - {0} else Side(SHARED, "random", "reinit")


def ticket_claims(summary: pd.DataFrame) -> list[dict]:
    """Figure 3's claims on the tickets of every layer: the lottery-ticket signature of label masks, then per
    self-supervised objective its masks against random ones, against label masks, and its own rewind against its
    re-initialisation."""
    full = summary[summary["layers"] == "all"]
    label_rewind, label_reinit = Side(REFERENCE, "imp", "rewind"), Side(REFERENCE, "imp", "reinit")
    rows = [ticket_claim(full, "label winning tickets beat their random re-initialisation (Frankle & Carbin)",
                         label_rewind, label_reinit, "above")]
    for tag in self_supervised(full["objective"]):
        rewind, reinit, random = Side(tag, "imp", "rewind"), Side(tag, "imp", "reinit"), random_baseline(full, tag)
        rows += [
            ticket_claim(full, "self-supervised masks beat random masks (both re-initialised)", reinit, random,
                         "above"),
            ticket_claim(full, "self-supervised winning tickets beat random masks", rewind, random, "above"),
            ticket_claim(full, "with re-initialisation, self-supervised masks match label masks", reinit,
                         label_reinit, "within", MARGIN),
            ticket_claim(full, "self-supervised winning tickets are worse than label winning tickets", rewind,
                         label_rewind, "below"),
            ticket_claim(full, "self-supervised winning tickets ≈ their re-initialisation", rewind, reinit,
                         "within", MARGIN),
            growth_claim(full, tag, rewind, random),
        ]
    return [row for row in rows if row is not None]


def growth_claim(summary: pd.DataFrame, tag: str, rewind: Side, random: Side) -> dict | None:
    """'The gap between self-supervised and random pruning increases when the network is severely pruned': per
    seed, (winning ticket - random mask) at the deepest re-trained level minus the same at the shallowest
    re-trained level > 0 (level 0 when only one level > 0 was re-trained)."""
    levels = sorted(levels_of(summary, rewind) & levels_of(summary, random) - {0})
    if not levels:
        return None
    deep, shallow = levels[-1], (levels[0] if len(levels) > 1 else 0)
    gap = lambda level: accuracies(summary, rewind, level) - accuracies(summary, random, level)  # noqa: E731
    row = judged(by_seed(gap(deep), gap(shallow), 0.0, "above"), "above")
    return dict(claim="the gap between self-supervised and random masks grows with sparsity",
                measured=f"({rewind} − {random}) at level {deep} minus at level {shallow}", level=deep,
                density=summary[summary["level"] == deep]["density"].mean(), threshold=0.0, kind="above",
                head_start=float("nan"), **row)


def supervision_claims(summary: pd.DataFrame) -> list[dict]:
    """Figure 5's claims on winning tickets (IMP mask, rewind): S4L and the labelled fraction alone each beat
    RotNet, S4L beats the labelled fraction alone (the same labels), and labels of every class beat whole classes
    (the same number of labels)."""
    full = summary[summary["layers"] == "all"]
    tags = [t for t in dict.fromkeys(full["objective"]) if t != SHARED]
    winning = lambda tag: Side(tag, "imp", "rewind")  # noqa: E731
    rows = []
    for tag in (t for t in tags if objective_of(t) in ("s4l", "few_labels")):
        if "rotnet" in tags:
            rows.append(ticket_claim(full, f"{'S4L' if objective_of(tag) == 's4l' else 'the labelled fraction alone'}"
                                           " beats RotNet's winning tickets", winning(tag), winning("rotnet"),
                                     "above"))
        alone = tag.replace("s4l", "few-labels", 1)
        if objective_of(tag) == "s4l" and alone in tags:
            rows.append(ticket_claim(full, "S4L beats the labelled fraction alone (the same labels)", winning(tag),
                                     winning(alone), "above"))
        classes = tag.replace("per-class", "classes", 1)
        if "per-class" in tag and classes in tags:
            rows.append(ticket_claim(full, "labels of every class beat labels of a few whole classes (as many labels)",
                                     winning(tag), winning(classes), "above"))
    return [row for row in rows if row is not None]


def layerwise_claims(summary: pd.DataFrame, pool_size: int) -> list[dict]:
    """Figure 4's claim at equal numbers of pruned weights: the label-minus-self-supervised gap of winning tickets
    is wider when the last layers are pruned than when the first are, for a split of the encoder into its first N
    and last (pool - N) conv layers that prune exactly as many weights (imp.layerwise_budget). Per seed, at the
    deepest level every ticket reached: (label - objective)[last] - (label - objective)[first]."""
    rows = []
    pairs = [(first, f"last {pool_size - int(first.split()[1])}") for first in summary["layers"].unique()
             if first.startswith("first")]
    for tag in self_supervised(summary["objective"]):
        for first, last in pairs:
            if last not in set(summary["layers"]):
                continue
            sides = {layers: (summary[summary["layers"] == layers]) for layers in (first, last)}
            label, own = Side(REFERENCE, "imp", "rewind"), Side(tag, "imp", "rewind")
            levels = [deepest_common(part, label, own) for part in sides.values()]
            if None in levels:
                continue
            level = min(levels)
            gap = {k: accuracies(p, label, level) - accuracies(p, own, level) for k, p in sides.items()}
            row = judged(by_seed(gap[last], gap[first], 0.0, "above"), "above")
            rows.append(dict(claim="the gap to label tickets is wider pruning the last layers than the first "
                                   "(as many weights pruned)", measured=f"{tag}: gap({last}) − gap({first})",
                             level=level, density=float("nan"), threshold=0.0, kind="above",
                             head_start=float("nan"), **row))
    return rows


def layerwise_gaps(summary: pd.DataFrame) -> pd.DataFrame:
    """Per self-supervised objective and pruned layers ('all', 'first N', 'last M'): the winning-ticket gap, label
    minus objective, per seed at the deepest level of those layers, with its paired interval."""
    rows = []
    label = Side(REFERENCE, "imp", "rewind")
    for tag in self_supervised(summary["objective"]):
        for layers in summary["layers"].unique():
            part = summary[summary["layers"] == layers]
            own = Side(tag, "imp", "rewind")
            level = deepest_common(part, label, own)
            if level is None:
                continue
            row = judged(by_seed(accuracies(part, label, level), accuracies(part, own, level), 0.0, "above"), "above")
            rows.append(dict(objective=tag, layers=layers, level=level, gap=row["estimate"], low=row["low"],
                             high=row["high"], seeds=row["n"],
                             pruned=part[part["level"] == level]["pruned_weights"].mean()))
    return pd.DataFrame(rows)


def transfer_claims(probes: pd.DataFrame) -> list[dict]:
    """Figure 1's claim: the last stage's probe accuracy at the deepest level with at least MODERATE_DENSITY of the
    weights is within MARGIN of the dense network's (not worse by more), per objective and probe dataset, paired
    by seed (the paper expects severely pruned features to lose accuracy)."""
    rows = []
    last = probes[probes["stage"] == probes["stage"].max()]
    for (tag, dataset), part in last.groupby(["objective", "probe_dataset"], sort=False):
        deepest = part[part["density"] >= MODERATE_DENSITY - 1e-9]["level"].max()
        if not deepest:
            continue
        accuracy = lambda level: part[part["level"] == level].set_index("seed")["accuracy"]  # noqa: E731
        row = judged(by_seed(accuracy(deepest), accuracy(0), -MARGIN, "above"), "above")
        rows.append(dict(claim="pruned features keep their transfer accuracy",
                         measured=f"{tag} on {dataset}, stage {int(part['stage'].max())}: level {deepest} − dense",
                         level=deepest, density=part[part["level"] == deepest]["density"].mean(), threshold=-MARGIN,
                         kind="above", head_start=float("nan"), **row))
    return rows


def pruning_time_claims(finetunes: pd.DataFrame) -> list[dict]:
    """Figure 2's claim: finetuning a network pruned during pre-training beats pruning it during the finetuning,
    at the deepest level both reached, paired by seed."""
    rows = []
    for (tag, dataset), part in finetunes.groupby(["objective", "dataset"], sort=False):
        levels = set(part[part["pruned"] == "imp"]["level"]) & set(part[part["pruned"] == "transfer_gmp"]["level"])
        if not levels - {0}:
            continue
        level = max(levels)
        at = part[part["level"] == level]
        accuracy = lambda pruned: at[at["pruned"] == pruned].set_index("seed")["test_accuracy"]  # noqa: E731
        rows.append(dict(claim="pruning during pre-training transfers better than pruning during transfer",
                         measured=f"{tag}: finetuned on {dataset}, level {level}", level=level,
                         density=at["density"].mean(), threshold=0.0, kind="above", head_start=float("nan"),
                         **judged(by_seed(accuracy("imp"), accuracy("transfer_gmp"), 0.0, "above"), "above")))
    return rows


COLUMNS = ["claim", "measured", "level", "density", "n", "head_start", "estimate", "low", "high", "verdict",
           "relative_estimate", "relative_low", "relative_high", "relative_verdict", "threshold", "kind",
           "procedure", "detectable"]


def claims_table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows).reindex(columns=COLUMNS) if rows else pd.DataFrame(columns=COLUMNS)


def percent(value: float) -> str:
    return "—" if value is None or pd.isna(value) else f"{100 * value:+.1f}"
