"""The study's report: `pies/<dataset>/report.md`, built from the tables the stages wrote (never recomputed here).

It holds the accuracy table, the PIE table, overlaps, Q-Score and prediction-depth summaries, links to the
figures, and the paper's claims checked as plain statements with the numbers behind them, true or false as
measured.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from common.io import write_text
from common.studies.corti2022.paths import CortiPaths
from common.studies.corti2022.claims import check_claims

NAMES = {"supervised": "supervised", "supcon": "SupCon"}


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.is_file() else pd.DataFrame()


def _pm(mean, std) -> str:
    if mean is None or pd.isna(mean):
        return "n/a"
    return f"{100 * mean:.2f} ± {100 * std:.2f}" if not pd.isna(std) else f"{100 * mean:.2f}"


def _markdown(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_none on disk_\n"
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *rows]) + "\n"


def _cell(value) -> str:
    if isinstance(value, float):
        return "n/a" if np.isnan(value) else f"{value:.4g}"
    return str(value)


# ---- tables ---------------------------------------------------------------------------------------

def accuracy_table(pies: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Test accuracy (%) mean ± std over members, per learning method x pruning method x sparsity."""
    rows = []
    for method, summary in pies.items():
        if summary.empty:
            continue
        first = summary.iloc[0]
        rows.append(dict(method=NAMES[method], pruning="dense", sparsity=0.0, models=int(first["dense_models"]),
                         accuracy=_pm(first["dense_accuracy_mean"], first["dense_accuracy_std"])))
        for r in summary.itertuples():
            rows.append(dict(method=NAMES[method], pruning=r.pruning, sparsity=r.sparsity, models=r.pruned_models,
                             accuracy=_pm(r.pruned_accuracy_mean, r.pruned_accuracy_std)))
    return pd.DataFrame(rows)


def pie_table(pies: dict[str, pd.DataFrame]) -> pd.DataFrame:
    frames = []
    for method, summary in pies.items():
        if summary.empty:
            continue
        extra = [c for c in ("pies_ci_low", "pies_ci_high", "disparate_classes") if c in summary]
        frame = summary[["pruning", "sparsity", "dense_models", "pruned_models", "pies", *extra, "pie_rate",
                         "dense_modal_accuracy_on_pies", "dense_modal_accuracy_on_rest"]].copy()
        frame.insert(0, "method", NAMES[method])
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def score_table(pies: dict[str, pd.DataFrame]) -> pd.DataFrame:
    rows = []
    for method, summary in pies.items():
        if summary.empty or "dense_q_score_mean" not in summary:
            continue
        for r in summary.to_dict("records"):
            rows.append(dict(method=NAMES[method], pruning=r["pruning"], sparsity=r["sparsity"],
                             dense_q=r["dense_q_score_mean"], pruned_q=r["pruned_q_score_mean"],
                             dense_q_pies=r["dense_q_score_pies"], pruned_q_pies=r["pruned_q_score_pies"],
                             dense_q_rest=r["dense_q_score_rest"], pruned_q_rest=r["pruned_q_score_rest"],
                             **{k: r[k] for k in ("q_score_shift_ci_low", "q_score_shift_ci_high",
                                                  "q_score_pie_excess", "q_score_pie_excess_ci_low",
                                                  "q_score_pie_excess_ci_high") if k in r}))
    return pd.DataFrame(rows)


def depth_table(depth: dict[str, pd.DataFrame]) -> pd.DataFrame:
    frames = [d for d in depth.values() if not d.empty]
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    cols = ["method", "pruning", "sparsity", "reference", "num_probes", "pies", "depth_dense_pies_mean",
            "depth_dense_rest_mean", "depth_pruned_pies_mean", "depth_pruned_rest_mean"]
    cols += [c for c in ("depth_dense_gap", "depth_dense_gap_ci_low", "depth_dense_gap_ci_high") if c in table]
    return table[cols]


# ---- figures ----------------------------------------------------------------------------------------

FIGURE_LINES = {
    "pies_vs_sparsity": "PIE counts against sparsity, one line per pruning method",
    "pies_per_class": "PIEs per class",
    "q_score": "per-example Q-Score, dense (x) vs pruned (y), PIEs in red, identity line",
    "umap": "UMAP of model 0's test representations, dense and pruned side by side; x marks PIEs",
    "scatter": "per-example prediction depth, dense (x) vs pruned (y), PIEs in red, identity line",
    "overlaps": "PIEs shared (opaque) and unique (faded) between two populations, per class",
}


def _sparsity_of(png: Path) -> float:
    match = re.search(r"_s([0-9.]+?)(?:_|$)", png.stem)
    return float(match.group(1)) if match else -1.0


def _at_highest_sparsity(pngs: list[Path]) -> list[Path]:
    top = max((_sparsity_of(p) for p in pngs), default=None)
    return [p for p in pngs if _sparsity_of(p) == top]


def _figures(paths: CortiPaths, dataset: str, method: str, report_dir: Path) -> list[str]:
    """Whole-method figures, then every pruning method's figures at the highest sparsity on disk."""
    base = paths.pies_dir(dataset, method)
    lines = []
    whole = base / "pies_vs_sparsity.png"
    if whole.is_file():
        lines.append(f"![{FIGURE_LINES['pies_vs_sparsity']}]({whole.relative_to(report_dir)})  \n"
                     f"*{NAMES[method]}: {FIGURE_LINES['pies_vs_sparsity']}.*")
    groups = [(kind, sorted((base / kind).glob("*.png"))) for kind in ("umap", "q_score", "pies_per_class",
                                                                         "overlaps")]
    groups.append(("scatter", sorted((base / "prediction_depth").glob("scatter_*.png"))))
    for kind, pngs in groups:
        for png in _at_highest_sparsity(pngs):
            lines.append(f"![{kind}]({png.relative_to(report_dir)})  \n*{NAMES[method]}, {png.stem}: "
                         f"{FIGURE_LINES[kind]}.*")
    return lines


def headline_umaps(paths: CortiPaths, dataset: str) -> list[tuple[str, Path]]:
    """The four UMAP panels of the authors' README: each method, dense vs the highest one-shot sparsity run."""
    found = []
    for method in ("supervised", "supcon"):
        pngs = sorted(paths.pie_figure(dataset, method, "umap", "global", 0.5).parent.glob("umap_global_s*.png"),
                      key=lambda p: float(p.stem.rsplit("_s", 1)[1]))
        if pngs:
            found.append((NAMES[method], pngs[-1]))
    return found


def copy_headline_figures(paths: CortiPaths, dataset: str, dest: Path, prefix: str = "") -> list[Path]:
    """Copy the README's figures (UMAP panels, PIEs against sparsity) into `dest` (figures/), named with
    `prefix` (one preset's figures beside another's)."""
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for name, png in headline_umaps(paths, dataset):
        copied.append(Path(shutil.copy(png, dest / f"{prefix}umap_{name}_{png.stem.split('_', 1)[1]}.png")))
    for method in ("supervised", "supcon"):
        png = paths.pies_dir(dataset, method) / "pies_vs_sparsity.png"
        if png.is_file():
            copied.append(Path(shutil.copy(png, dest / f"{prefix}pies_vs_sparsity_{NAMES[method]}.png")))
    return copied


# ---- the report -------------------------------------------------------------------------------------

def measured_claims(paths: CortiPaths, dataset: str) -> list[str]:
    """The paper's claims as measured from the tables and leave-one-seed-out PIE masks on disk, each with its 95 %
    interval and verdict (common.studies.corti2022.claims): the report's first section."""
    methods = ("supervised", "supcon")
    pies = {m: _read(paths.pie_summary(dataset, m)) for m in methods}
    overlaps = {m: _read(paths.pie_overlaps(dataset, m)) for m in methods}
    depth = [d for d in (_read(paths.depth_summary(dataset, m)) for m in methods) if not d.empty]
    return check_claims(paths, dataset, pies, _read(paths.pie_comparison(dataset)), overlaps,
                        pd.concat(depth, ignore_index=True) if depth else pd.DataFrame())


def disparity_table(paths: CortiPaths, dataset: str, pies: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per configuration, the classes Hooker et al.'s Welch test finds disparately affected (p <= 0.05), those
    pruning hurts (mean-shifted accuracy lower in the pruned members) and those it spares."""
    rows = []
    for method, summary in pies.items():
        for r in summary.itertuples() if not summary.empty else ():
            table = _read(paths.pie_class_disparity(dataset, method, r.pruning, r.sparsity))
            if table.empty:
                continue
            flagged = table[table["disparate"].astype(bool)]
            hurt = flagged[flagged["pruned_shifted"] < flagged["dense_shifted"]]["class_name"].tolist()
            spared = flagged[flagged["pruned_shifted"] >= flagged["dense_shifted"]]["class_name"].tolist()
            rows.append(dict(method=NAMES[method], pruning=r.pruning, sparsity=r.sparsity, disparate=len(flagged),
                             hurt=", ".join(map(str, hurt)) or "—", spared=", ".join(map(str, spared)) or "—"))
    return pd.DataFrame(rows)


def write_report(paths: CortiPaths, dataset: str, timings: list[dict] | None = None) -> Path:
    report_dir = paths.pies / dataset
    methods = ("supervised", "supcon")
    pies = {m: _read(paths.pie_summary(dataset, m)) for m in methods}
    overlaps = {m: _read(paths.pie_overlaps(dataset, m)) for m in methods}
    comparison = _read(paths.pie_comparison(dataset))
    depth = {m: _read(paths.depth_summary(dataset, m)) for m in methods}
    scores, depth_all = score_table(pies), depth_table(depth)

    parts = [f"# Magnitude pruning x learning method: report on `{dataset}`\n",
             "Generated by `reproduce.py` from the tables under this folder; every number below is read from "
             "those files.\n",
             "## Claims of the paper, as measured\n", *measured_claims(paths, dataset),
             "\n## Test accuracy (%, mean ± std over the members of each population)\n",
             _markdown(accuracy_table(pies)),
             "\n## PIEs (modal label of the pruned population differs from the dense one's)\n",
             "`pies_ci_low` / `_high`: 95 % interval of the count, jackknife over seeds (none below 3 seeds). "
             "`disparate_classes`: classes whose "
             "mean-shifted accuracy differs between dense and pruned members (Hooker et al.'s two-tailed Welch "
             "t-test, p <= 0.05; one table per configuration under `<method>/class_disparity/`). "
             "`dense_modal_accuracy_on_pies` / `_on_rest`: accuracy of the dense population's modal label on the "
             "PIEs and on the other examples.\n\n", _markdown(pie_table(pies)),
             "\n## PIE overlaps\n", "Between pruning methods of one learning method:\n\n",
             _markdown(pd.concat([o for o in overlaps.values() if not o.empty], ignore_index=True)
                       if any(not o.empty for o in overlaps.values()) else pd.DataFrame()),
             "\nBetween supervised and SupCon at equal pruning method and sparsity:\n\n", _markdown(comparison),
             "\n## Classes disparately affected (Hooker et al.'s class-level test)\n",
             "Per member, each class's accuracy minus the member's overall accuracy; per class a two-tailed Welch "
             "t-test of pruned vs dense members, p <= 0.05. `hurt`: lower in the pruned members; `spared`: higher "
             "(the normalisation makes the others gain when one class collapses).\n\n",
             _markdown(disparity_table(paths, dataset, pies)),
             "\n## Q-Score of the encoder representation (mean over examples of the population-averaged score)\n",
             _markdown(scores),
             "\n## Prediction depth (probe index from which every k-NN probe agrees; 0 = all agree)\n",
             _markdown(depth_all)]
    umaps = headline_umaps(paths, dataset)
    if umaps:
        parts.append("\n## UMAP: dense vs the highest one-shot sparsity\n")
        parts += [f"![{name}]({png.relative_to(report_dir)})  \n*{name}: UMAP of model 0's test representations, "
                  f"dense (left) and {png.stem.split('_')[-1]} global (right), coloured by class; x marks PIEs.*\n"
                  for name, png in umaps]
    parts.append("\n## Figures\n")
    for method in methods:
        parts += [line + "\n" for line in _figures(paths, dataset, method, report_dir)]
    if timings:
        parts += ["\n## Stage timings\n", _markdown(pd.DataFrame(timings))]
    path = report_dir / "report.md"
    write_text(path, "\n".join(parts))
    return path
