"""The tickets study's report over every pruning objective on disk for one (dataset, arch): summary.csv (one row
per re-trained ticket), the Figure 3 analogue, the natural sparsity of the dense networks (per epoch, per layer)
and report.md with the accuracy table."""
from __future__ import annotations

import logging

import pandas as pd

from common.cli import UsageError
from common.io import write_csv, write_text
from common.paths import Paths
from common.plots.tickets import plot_natural_sparsity, plot_tickets
from common.provenance import read_metas
from common.studies.tickets.config import STUDY
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
                         level=int(knobs["level"]), rewind=knobs["rewind"], density=1.0 - metas[spec]["sparsity"],
                         seed=spec.seed, test_accuracy=metas[spec]["test_accuracy"]))
    return pd.DataFrame(rows)


def natural_sparsity_table(paths: Paths, dataset: str, arch: str, rewind: str) -> pd.DataFrame:
    """The natural sparsity every dense (level 0) IMP network of this rewind point recorded after each epoch."""
    frames = []
    for method in ("supervised", "supcon"):
        for spec in finished_specs(paths, dataset, method, arch, STUDY):
            knobs = dict(spec.knobs)
            path = paths.record_csv(spec, "natural_sparsity")
            if (spec.pruning == "imp" and str(knobs.get("level")) == "0" and str(knobs.get("rewind")) == rewind
                    and path.is_file()):
                frames.append(pd.read_csv(path).assign(objective=method, seed=spec.seed))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def accuracy_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and count of test accuracy per objective, mask source, init and level (and its density: another
    --pruning_rate is another level)."""
    return (summary.assign(level_density=summary["density"].round(6))
            .groupby(["objective", "mask_source", "init", "level", "level_density"])
            .agg(density=("density", "mean"), mean=("test_accuracy", "mean"), std=("test_accuracy", "std"),
                 seeds=("seed", "count")).reset_index().drop(columns="level_density"))


def write_report(paths: Paths, dataset: str, arch: str, rewind: str):
    """The report of one rewind point (summary.csv keeps every rewind on disk, with its column)."""
    everything = ticket_summary(paths, dataset, arch)
    summary = everything[everything["rewind"] == rewind] if not everything.empty else everything
    if summary.empty:
        where = paths.model_dir(dataset, "supervised", STUDY)
        raise UsageError(f"no re-trained tickets of {arch} on {dataset} under {where}: run `python studies/tickets.py "
                         f"--dataset {dataset} --arch {arch} --stages imp retrain` first")
    write_csv(everything, paths.study_file(dataset, STUDY, "summary.csv"))
    plot_tickets(summary, paths.study_file(dataset, STUDY, "tickets.png"))
    natural = natural_sparsity_table(paths, dataset, arch, rewind)
    table = accuracy_table(summary)
    write_csv(table, paths.study_file(dataset, STUDY, "accuracy.csv"))
    lines = [f"# Winning tickets: {arch} on {dataset}, rewind {rewind}", "",
             "Test accuracy (%) after re-training each level's mask on labels, mean ± std over seeds "
             f"({int(table['seeds'].min())}–{int(table['seeds'].max())} per cell; accuracy.csv, summary.csv).", ""]
    for objective, part in table.groupby("objective"):
        lines += [f"Masks found by **{objective}** pruning:", "", _markdown(wide(part)), ""]
    lines += ["![Figure 3 analogue](tickets.png)", ""]
    if not natural.empty:
        write_csv(natural, paths.study_file(dataset, STUDY, "natural_sparsity.csv"))
        plot_natural_sparsity(natural, paths.study_file(dataset, STUDY, "natural_sparsity.png"))
        lines += natural_sparsity_section(natural)
    path = paths.study_file(dataset, STUDY, "report.md")
    write_text(path, "\n".join(lines))
    return path


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
