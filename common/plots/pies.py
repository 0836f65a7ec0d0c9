"""Figures of the PIE stage: arrays or tables in, one PNG out (written atomically by common.plots.save_figure).
Nothing here computes a metric."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from common.plots import plt, save_figure

PIE_COLOR, REST_COLOR = "tab:red", "tab:green"  # the authors' scatter colours: red PIEs, green the rest


def _class_axis(ax, num_classes: int, label: str = "class (true label)") -> None:
    ax.set_xticks(range(num_classes))
    ax.set_xlabel(label)


def plot_pies_per_class(pies_per_class, examples_per_class, title: str, path: Path) -> None:
    """Bar per class: number of PIEs among its test examples, annotated with the rate."""
    pies_per_class, examples_per_class = np.asarray(pies_per_class), np.asarray(examples_per_class)
    classes = np.arange(len(pies_per_class))
    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    bars = ax.bar(classes, pies_per_class, color=PIE_COLOR, alpha=0.8)
    rates = pies_per_class / np.maximum(examples_per_class, 1)
    ax.bar_label(bars, labels=[f"{r:.1%}" if n else "" for n, r in zip(pies_per_class, rates)], fontsize=6,
                 padding=1)
    _class_axis(ax, len(classes))
    ax.set_ylabel("number of PIEs")
    ax.set_ylim(0, max(1, pies_per_class.max()) * 1.15)
    ax.set_title(f"{title}\n{int(pies_per_class.sum())} PIEs of {int(examples_per_class.sum())} test examples "
                 f"(bar label: share of the class)")
    save_figure(fig, path)


def plot_pies_vs_sparsity(summary: pd.DataFrame, title: str, path: Path) -> None:
    """Left: number of PIEs against sparsity, one line per pruning method, with its 95 % interval (jackknife over
    seeds, common.metrics.verdicts) as error bars where the summary has one (3 seeds or more). Right: mean member test accuracy (± std over members) of
    the pruned populations, with the dense population's as a dashed line."""
    fig, (pie_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3.4))
    for pruning, rows in summary.sort_values("sparsity").groupby("pruning", sort=True):
        if {"pies_ci_low", "pies_ci_high"} <= set(rows) and rows["pies_ci_low"].notna().all():
            below = (rows["pies"] - rows["pies_ci_low"]).clip(lower=0)
            above = (rows["pies_ci_high"] - rows["pies"]).clip(lower=0)
            line = pie_ax.errorbar(rows["sparsity"], rows["pies"], yerr=[below, above], fmt="o-", capsize=3,
                                   label=pruning).lines[0]
        else:
            line = pie_ax.plot(rows["sparsity"], rows["pies"], "o-", label=pruning)[0]
        acc_ax.errorbar(rows["sparsity"], rows["pruned_accuracy_mean"], yerr=rows["pruned_accuracy_std"].fillna(0),
                        fmt="o-", capsize=3, color=line.get_color(), label=pruning)
    dense = summary["dense_accuracy_mean"].iloc[0]
    acc_ax.axhline(dense, ls="--", color="black", lw=1, label=f"dense ({dense:.3f})")
    pie_ax.set(xlabel="sparsity", ylabel="number of PIEs (95 % jackknife interval)",
               title="PIEs (dense vs pruned modal labels)")
    acc_ax.set(xlabel="sparsity", ylabel="test accuracy (mean ± std over members)", title="accuracy")
    for ax in (pie_ax, acc_ax):
        ax.set_xticks(sorted(summary["sparsity"].unique()))
        ax.legend(frameon=False, fontsize=7)
    pie_ax.set_ylim(bottom=0)
    fig.suptitle(title)
    save_figure(fig, path)


def plot_pie_images(images, true_labels, dense_labels, pruned_labels, title: str, path: Path,
                    columns: int = 8) -> None:
    """Grid of PIE images (uint8 [n, 3, H, W], un-normalised) captioned with the true label (T) and the dense
    (D) and pruned (P) modal labels, as Hooker et al. show them; a caption is red where the dense population was
    right and the pruned one wrong."""
    n = len(images)
    columns = max(1, min(columns, n))
    rows = max(1, -(-n // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(max(columns * 1.05, 6.5), rows * 1.25 + 0.6), squeeze=False,
                             layout="constrained")
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, t, d, p in zip(axes.ravel(), images, true_labels, dense_labels, pruned_labels):
        ax.imshow(np.asarray(image).transpose(1, 2, 0), interpolation="nearest")
        ax.set_title(f"T{t} D{d} P{p}", fontsize=7, color="tab:red" if d == t != p else "black")
    if n == 0:
        axes[0, 0].text(0.5, 0.5, "no PIEs", fontsize=10, ha="center", transform=fig.transFigure)
    fig.suptitle(f"{title}\nT = true label, D = dense modal label, P = pruned modal label "
                 f"(red: dense right, pruned wrong)", fontsize=8)
    save_figure(fig, path)


def plot_score_scatter(dense, pruned, pies, score_label: str, sparsity: float, title: str, path: Path) -> None:
    """One point per example: its score averaged over the dense population (x) and over the pruned population
    (y); PIEs red, non-PIEs green, identity line. Axis labels follow the authors' Q-SCORE figures."""
    dense, pruned, pies = np.asarray(dense), np.asarray(pruned), np.asarray(pies, dtype=bool)
    fig, ax = plt.subplots(figsize=(4.4, 4.2))
    ax.scatter(dense[~pies], pruned[~pies], s=6, c=REST_COLOR, alpha=0.5, lw=0, label=f"not PIEs ({(~pies).sum()})")
    ax.scatter(dense[pies], pruned[pies], s=10, c=PIE_COLOR, alpha=0.9, lw=0, label=f"PIEs ({pies.sum()})")
    both = np.concatenate([dense, pruned])
    low, high = (both.min(), both.max()) if both.size else (0.0, 1.0)
    pad = 0.03 * (high - low or 1.0)
    ax.plot([low - pad, high + pad], [low - pad, high + pad], "k--", lw=0.8, label="identity")
    ax.set_xlim(low - pad, high + pad)
    ax.set_ylim(low - pad, high + pad)
    ax.set_aspect("equal")
    ax.set_xlabel(f"Average {score_label} encoders NOT pruned")
    ax.set_ylabel(f"Average {score_label} encoders {sparsity:g} pruned")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=7, loc="upper left", markerscale=2)
    save_figure(fig, path)


def plot_umap_panels(dense_embedding, pruned_embedding, dense_colors, pruned_colors, pies, num_classes: int,
                     titles: tuple[str, str], color_label: str, suptitle: str, path: Path) -> None:
    """Dense and pruned 2-D UMAP embeddings side by side, points coloured by class, PIEs marked with a black x."""
    pies = np.asarray(pies, dtype=bool)
    cmap = plt.get_cmap("tab10" if num_classes <= 10 else "tab20", num_classes)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8), constrained_layout=True)
    for ax, emb, colors, panel_title in zip(axes, (dense_embedding, pruned_embedding), (dense_colors, pruned_colors),
                                            titles):
        emb = np.asarray(emb)
        points = ax.scatter(emb[:, 0], emb[:, 1], c=colors, cmap=cmap, vmin=-0.5, vmax=num_classes - 0.5, s=5,
                            lw=0)
        ax.scatter(emb[pies, 0], emb[pies, 1], marker="x", c="black", s=18, lw=0.8, label=f"PIEs ({pies.sum()})")
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(panel_title)
        ax.legend(frameon=False, loc="best", fontsize=7)
    bar = fig.colorbar(points, ax=axes, ticks=range(num_classes), shrink=0.8)
    bar.set_label(color_label)
    fig.suptitle(suptitle)
    save_figure(fig, path)


def plot_overlap_per_class(per_class: dict, name_a: str, name_b: str, title: str, path: Path) -> None:
    """The authors' style: per class, a horizontal bar of the PIEs common to both sets (opaque) over all of that
    set's PIEs (common + unique, alpha 0.2); one panel per set."""
    common = np.asarray(per_class["common"])
    classes = np.arange(len(common))
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4), sharex=True, sharey=True)  # shared: common bars match
    for ax, name, unique, color in zip(axes, (name_a, name_b), (per_class["unique_a"], per_class["unique_b"]),
                                       ("tab:blue", "tab:orange")):
        unique = np.asarray(unique)
        ax.barh(classes, common + unique, color=color, alpha=0.2)
        ax.barh(classes, common, color=color)
        ax.set_yticks(classes)
        ax.set_xlabel("number of PIEs")
        ax.set_title(f"{name}: {int(common.sum())} common, {int(unique.sum())} unique", fontsize=8)
    key = [Patch(color="grey", label="common to both sets"), Patch(color="grey", alpha=0.2, label="unique to this set")]
    fig.legend(handles=key, loc="lower center", ncol=2, frameon=False, fontsize=7, bbox_to_anchor=(0.5, -0.1))
    axes[0].set_ylabel("class (true label)")
    axes[0].invert_yaxis()  # once: the y axis is shared, a second call would flip it back
    fig.suptitle(title)
    save_figure(fig, path)
