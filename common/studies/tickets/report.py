"""The tickets study's report over every pruning objective on disk for one (dataset, arch): summary.csv (one row
per re-trained ticket), claims.csv (Caron et al.'s claims with intervals), the analogues of Figures 1-5, the
natural sparsity of the dense networks (per epoch, per layer) and report.md with the tables."""
from __future__ import annotations

import logging

import pandas as pd

from common.errors import UsageError
from common.io import write_csv, write_text
from common.paths import Paths
from common.data import DATASETS as DATASET_REGISTRY
from common.plots.tickets import (plot_few_labels, plot_layerwise, plot_natural_sparsity, plot_pruning_time,
                                  plot_tickets, plot_transfer)
from common.provenance import read_metas
from common.studies.tickets.claims import (claims_table, layerwise_claims, layerwise_gaps, percent,
                                           pruning_time_claims, supervision_claims, ticket_claims, transfer_claims)
from common.studies.tickets.config import STUDY, objective_of
from common.studies.tickets.config import OBJECTIVES
from common.studies.tickets.retrain import VARIANTS
from common.zoo import finished_specs

log = logging.getLogger("prune")


def ticket_summary(paths: Paths, dataset: str, arch: str) -> pd.DataFrame:
    """One row per re-trained ticket on disk: objective, mask source, init, level, density (measured), seed, test
    accuracy."""
    specs = [s for s in finished_specs(paths, dataset, "supervised", arch, STUDY) if "init" in dict(s.knobs)]
    metas = read_metas(paths, specs)
    rows = []
    for spec in specs:
        knobs = dict(spec.knobs)
        rows.append(dict(objective=knobs["objective"], mask_source=spec.pruning, init=knobs["init"],
                         level=int(knobs["level"]), rewind=knobs["rewind"], layers=int(knobs.get("layers", 0)),
                         density=1.0 - metas[spec]["sparsity"], seed=spec.seed,
                         test_accuracy=metas[spec]["test_accuracy"]))
    return pd.DataFrame(rows)


def finetune_summary(paths: Paths, dataset: str, arch: str, rewind: str) -> pd.DataFrame:
    """One row per network pre-trained on `dataset` and finetuned on another (Figure 2): objective, when it was
    pruned (imp: during pre-training; transfer_gmp: during the finetuning), level, density, seed, test accuracy."""
    rows = []
    for other in DATASET_REGISTRY:
        specs = [s for s in finished_specs(paths, other, "supervised", arch, STUDY)
                 if dict(s.knobs).get("source") == dataset.replace("_", "-") and dict(s.knobs)["rewind"] == rewind]
        metas = read_metas(paths, specs)
        rows += [dict(objective=dict(s.knobs)["objective"], dataset=other, pruned=s.pruning,
                      level=int(dict(s.knobs)["level"]), density=1.0 - metas[s]["sparsity"], seed=s.seed,
                      test_accuracy=metas[s]["test_accuracy"]) for s in specs]
    return pd.DataFrame(rows)


def probe_table(paths: Paths, dataset: str, arch: str, rewind: str) -> pd.DataFrame:
    """Every objective's linear probes (transfer stage) of this arch and rewind point, networks pruned at every
    layer."""
    frames = [pd.read_csv(path) for path in sorted(paths.study_dir(dataset, STUDY).glob(f"probes_{arch}_*.csv"))]
    probes = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return probes if probes.empty else probes[(probes["rewind"] == rewind) & (probes["layers"] == 0)]


def natural_sparsity_table(paths: Paths, dataset: str, arch: str, rewind: str) -> pd.DataFrame:
    """The natural sparsity every dense (level 0) IMP network of this rewind point recorded after each epoch."""
    frames = []
    for method in OBJECTIVES:
        for spec in finished_specs(paths, dataset, method, arch, STUDY):
            knobs = dict(spec.knobs)
            path = paths.record_csv(spec, "natural_sparsity")
            if (spec.pruning == "imp" and str(knobs.get("level")) == "0" and str(knobs.get("rewind")) == rewind
                    and path.is_file()):
                tag = method.replace("_", "-") + (f"-{knobs['labels']}" if "labels" in knobs else "")
                frames.append(pd.read_csv(path).assign(objective=tag, seed=spec.seed))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def accuracy_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and count of test accuracy per objective, mask source, init and level (and its density: another
    --pruning_rate is another level)."""
    return (summary.assign(level_density=summary["density"].round(6))
            .groupby(["objective", "mask_source", "init", "level", "level_density"])
            .agg(density=("density", "mean"), mean=("test_accuracy", "mean"), std=("test_accuracy", "std"),
                 seeds=("seed", "count")).reset_index().drop(columns="level_density"))


def write_report(paths: Paths, dataset: str, arch: str, rewind: str, pool_size: int):
    """The report of one rewind point (summary.csv keeps every rewind on disk, with its column): the analogues of
    Figures 1-5 that the models on disk allow, the claims with their intervals, natural sparsity."""
    everything = ticket_summary(paths, dataset, arch)
    summary = everything[everything["rewind"] == rewind] if not everything.empty else everything
    if summary.empty:
        where = paths.model_dir(dataset, "supervised", STUDY)
        raise UsageError(f"no re-trained tickets of {arch} on {dataset} under {where}: run `python studies/tickets.py "
                         f"--dataset {dataset} --arch {arch} --stages imp retrain` first")
    out = lambda name: paths.study_file(dataset, STUDY, name)  # noqa: E731
    write_csv(everything, out("summary.csv"))
    full = summary[summary["layers"] == 0]
    table = accuracy_table(full)
    write_csv(table, out("accuracy.csv"))
    probes, finetunes = probe_table(paths, dataset, arch, rewind), finetune_summary(paths, dataset, arch, rewind)
    gaps = layerwise_gaps(summary)
    claims = claims_table(ticket_claims(summary) + layerwise_claims(summary, pool_size) + supervision_claims(summary)
                          + transfer_claims(probes if not probes.empty else _NO_PROBES)
                          + pruning_time_claims(finetunes if not finetunes.empty else _NO_FINETUNES))
    write_csv(claims, out("claims.csv"))
    lines = [f"# Pruning with and without labels: {arch} on {dataset}, rewind {rewind}", "",
             "Analogues of Caron et al. 2020's Figures 1-5. Accuracies are means over seeds; intervals are 95 % "
             "t intervals over seeds, paired where both sides share their seeds (common/metrics/verdicts.py). "
             "Below 3 seeds per side a claim reads TOO FEW SEEDS; an UNDECIDED one rules out differences larger "
             "than its `detectable (pp)` (80 % power).", "",
             "## Claims", "", claims_markdown(claims), ""]
    if not probes.empty:
        plot_transfer(probes, out("transfer.png"))
        lines += transfer_section(probes)
    if not finetunes.empty:
        write_csv(finetunes, out("finetunes.csv"))
        plot_pruning_time(finetunes, out("pruning_time.png"))
        lines += ["## Figure 2: pruning during pre-training or during transfer", "",
                  "Test accuracy on the other dataset after finetuning, mean ± std over seeds (finetunes.csv).", "",
                  _markdown(finetune_means(finetunes)), "", "![Figure 2 analogue](pruning_time.png)", ""]
    lines += tickets_section(table, out)
    plot_tickets(full, out("tickets.png"))
    if not gaps.empty and gaps["layers"].nunique() > 1:
        write_csv(gaps, out("layerwise.csv"))
        plot_layerwise(gaps, pool_size, out("layerwise.png"))
        lines += ["## Figure 4: layerwise tickets", "",
                  "Winning-ticket accuracy of label masks minus self-supervised masks (percentage points), pruning "
                  "only the first N conv layers, at the deepest level run (layerwise.csv).", "",
                  _markdown(gaps_in_points(gaps)), "", "![Figure 4 analogue](layerwise.png)", ""]
    few = [t for t in dict.fromkeys(full["objective"]) if objective_of(t) in ("supervised", "rotnet", "s4l",
                                                                                "few_labels")]
    if any(objective_of(t) in ("s4l", "few_labels") for t in few):
        plot_few_labels(full, few, out("few_labels.png"))
        lines += ["## Figure 5: pruning with few labels", "", "Winning tickets (IMP mask, rewind) of the objectives "
                  "that see all, none or a fraction of the labels (the tag names the sampling and the fraction).",
                  "", "![Figure 5 analogue](few_labels.png)", ""]
    natural = natural_sparsity_table(paths, dataset, arch, rewind)
    if not natural.empty:
        write_csv(natural, out("natural_sparsity.csv"))
        plot_natural_sparsity(natural, out("natural_sparsity.png"))
        lines += natural_sparsity_section(natural)
    path = out("report.md")
    write_text(path, "\n".join(lines))
    return path


_NO_PROBES = pd.DataFrame(columns=["objective", "probe_dataset", "stage", "level", "density", "accuracy"])
_NO_FINETUNES = pd.DataFrame(columns=["objective", "dataset", "pruned", "level", "density", "test_accuracy"])


def gaps_in_points(gaps: pd.DataFrame) -> pd.DataFrame:
    """The layerwise gaps in percentage points with their interval; layers 0 means every conv layer."""
    return pd.DataFrame({"objective": gaps["objective"], "first N layers pruned": gaps["layers"].replace(0, "all"),
                         "level": gaps["level"], "gap (pp)": gaps["gap"].map(percent),
                         "95 % interval (pp)": [f"[{percent(lo)}, {percent(hi)}]"
                                                for lo, hi in zip(gaps["low"], gaps["high"])]})


def claims_markdown(claims: pd.DataFrame) -> str:
    if claims.empty:
        return "No claim can be measured yet: run more objectives (reproduce.py --study tickets)."
    shown = claims.assign(**{"difference (pp)": claims["difference"].map(percent),
                             "95 % interval (pp)": [f"[{percent(lo)}, {percent(hi)}]"
                                                    for lo, hi in zip(claims["low"], claims["high"])],
                             "threshold (pp)": claims["threshold"].map(percent),
                             "detectable (pp)": claims["detectable"].map(percent)})
    return _markdown(shown[["claim", "measured", "difference (pp)", "95 % interval (pp)", "threshold (pp)",
                            "verdict", "seeds", "procedure", "detectable (pp)"]])


def tickets_section(table: pd.DataFrame, out) -> list[str]:
    lines = ["## Figure 3: masks re-trained on labels", "",
             "Test accuracy (%) after re-training each level's mask on labels, mean ± std over seeds "
             f"({int(table['seeds'].min())}–{int(table['seeds'].max())} per cell; accuracy.csv, summary.csv).", ""]
    for objective, part in table.groupby("objective", sort=False):
        lines += [f"Masks found by **{objective}** pruning:", "", _markdown(wide(part)), ""]
    return lines + ["![Figure 3 analogue](tickets.png)", ""]


def transfer_section(probes: pd.DataFrame) -> list[str]:
    """Figure 1: the last stage's probe accuracy per objective and level, and the figure of every stage."""
    last = probes[probes["stage"] == probes["stage"].max()]
    table = (last.groupby(["probe_dataset", "objective", "level"], sort=False)
             .agg(density=("density", "mean"), accuracy=("accuracy", "mean")).reset_index())
    wide_table = table.assign(cell=(100 * table["accuracy"]).map(lambda v: f"{v:.1f}")).pivot_table(
        index=["probe_dataset", "objective"], columns="level", values="cell", aggfunc="first").reset_index()
    wide_table.columns = [c if isinstance(c, str) else f"level {c}" for c in wide_table.columns]
    return ["## Figure 1: linear probes of the pruned features", "",
            f"Test accuracy (%) of a linear classifier on the frozen network's pooled features of its last stage "
            f"(stage {int(probes['stage'].max())}), mean over seeds, per IMP level; every stage in probes_*.csv "
            "and the figure.", "", _markdown(wide_table), "", "![Figure 1 analogue](transfer.png)", ""]


def finetune_means(finetunes: pd.DataFrame) -> pd.DataFrame:
    return (finetunes.groupby(["objective", "dataset", "pruned", "level"], sort=False)
            .agg(density=("density", "mean"), mean=("test_accuracy", "mean"), std=("test_accuracy", "std"),
                 seeds=("seed", "count")).reset_index())


def wide(table: pd.DataFrame) -> pd.DataFrame:
    """One row per level (% of weights remaining), one column per mask source x init: 'mean ± std' in %."""
    cells = table.assign(variant=table["mask_source"] + " / " + table["init"],
                         cell=[f"{100 * m:.1f} ± {100 * (0 if pd.isna(s) else s):.1f}"
                               for m, s in zip(table["mean"], table["std"])])
    out = cells.pivot_table(index=["level", "density"], columns="variant", values="cell", aggfunc="first")
    order = [f"{source} / {init}" for source, init in VARIANTS if f"{source} / {init}" in out.columns]
    out = out[order].reset_index().fillna("")
    out["density"] = (100 * out["density"]).map(lambda v: f"{v:.1f} %")
    return out.rename(columns={"density": "weights remaining"})


def natural_sparsity_section(natural: pd.DataFrame) -> list[str]:
    """The fraction of prunable weights below each threshold at the initialisation and at the end of dense
    training, and what it means for pruning below that rate."""
    overall = natural[natural["layer"] == "all"]
    last = overall[overall["epoch"] == overall.groupby(["objective", "seed"])["epoch"].transform("max")]
    table = (last.groupby(["objective", "threshold"])["fraction"].agg(trained="mean", std="std", seeds="count")
             .join(overall[overall["epoch"] == 0].groupby(["objective", "threshold"])["fraction"].mean()
                   .rename("at_initialisation")).reset_index())
    table = table[["objective", "threshold", "at_initialisation", "trained", "std", "seeds"]]
    top = table.loc[table["trained"].idxmax()]
    return ["## Natural sparsity of the trained dense networks", "",
            "Fraction of the prunable weights below each threshold (common/metrics/natural_sparsity.py), over the "
            "pool, mean over seeds; natural_sparsity.csv has every layer after every epoch.", "",
            _markdown(table), "",
            natural_sparsity_verdict(top["objective"], top["threshold"], top["trained"], top["at_initialisation"]),
            "",
            "![natural sparsity](natural_sparsity.png)", ""]


def natural_sparsity_verdict(objective: str, threshold: str, trained: float, at_init: float) -> str:
    """What the largest measured natural sparsity means for pruning below that rate."""
    measured = (f"At most {100 * trained:.2f} % of the weights ({objective}, {threshold}) are naturally zero after "
                f"dense training ({100 * at_init:.2f} % at the initialisation). ")
    if trained > 2 * at_init:
        return measured + ("Pruning below that rate removes weights that training had already driven to about "
                           "zero, so a comparison with random masks there says little about what the masks learned "
                           "(Caron et al. §4.3); the corrected random mask prunes those weights first.")
    return measured + ("Training added no natural zeros beyond those of the initialisation: at this scale natural "
                       "sparsity is no caveat, and the corrected random mask differs from the plain one by those "
                       "few weights only.")


def _markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def _cell(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
