"""The tickets study's figures: Caron et al.'s Figure 3 (accuracy of re-trained tickets against the weights
remaining) and the natural sparsity of dense training."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from common.plots import plt, save_figure

VARIANT_STYLE = {  # (mask source, init) -> (label, colour, line style)
    ("imp", "rewind"): ("winning ticket (IMP mask, rewind)", "tab:blue", "-"),
    ("imp", "reinit"): ("IMP mask, random re-init", "tab:orange", "--"),
    ("random", "reinit"): ("random mask", "tab:gray", ":"),
    ("random_natural", "reinit"): ("random mask, natural zeros first", "tab:green", "-."),
}


def plot_tickets(summary: pd.DataFrame, path: Path) -> None:
    """One panel per pruning objective: test accuracy (mean ± std over seeds, shaded) against % of the pool's
    weights remaining on a log axis, one curve per mask source x init."""
    objectives = list(dict.fromkeys(summary["objective"]))
    fig, axes = plt.subplots(1, len(objectives), figsize=(4.6 * len(objectives), 3.6), squeeze=False, sharey=True)
    for ax, objective in zip(axes[0], objectives):
        part = summary[summary["objective"] == objective]
        for (source, init), (label, colour, style) in VARIANT_STYLE.items():
            curve = part[(part["mask_source"] == source) & (part["init"] == init)]
            if curve.empty:
                continue
            levels = curve.assign(level_density=curve["density"].round(6)).groupby(["level", "level_density"])
            stats = levels.agg(density=("density", "mean"), mean=("test_accuracy", "mean"),
                               std=("test_accuracy", "std")).fillna(0.0)
            x = 100 * stats["density"]
            ax.plot(x, 100 * stats["mean"], style, color=colour, marker="o", ms=3, label=label)
            ax.fill_between(x, 100 * (stats["mean"] - stats["std"]), 100 * (stats["mean"] + stats["std"]),
                            color=colour, alpha=0.15, lw=0)
        ax.set_xscale("log")
        ticks = sorted({round(100 * d, 1) for d in part["density"]}, reverse=True)[::2]  # every other level
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.invert_xaxis()
        ax.set_xlabel("% of weights remaining (log)")
        ax.set_title(f"masks found by {objective} pruning")
    axes[0, 0].set_ylabel("test accuracy after re-training on labels (%)")
    axes[0, -1].legend(frameon=False, fontsize=7)
    save_figure(fig, path)


def threshold_label(name: str) -> str:
    """'abs1e-4' -> '|w| < 1e-4', 'std1e-2' -> '|w| < 1e-2 x layer std' (common.metrics.natural_sparsity)."""
    return f"|w| < {name[3:]}" + (" × layer std" if name.startswith("std") else "")


def plot_natural_sparsity(frame: pd.DataFrame, path: Path) -> None:
    """Fraction of the pool's weights below each threshold after every epoch of dense training (mean over seeds),
    one line per pruning objective, one panel per threshold."""
    overall = frame[frame["layer"] == "all"]
    thresholds = list(dict.fromkeys(overall["threshold"]))
    fig, axes = plt.subplots(1, len(thresholds), figsize=(3.4 * len(thresholds), 3.0), squeeze=False)
    for ax, threshold in zip(axes[0], thresholds):
        part = overall[overall["threshold"] == threshold]
        for objective, curve in part.groupby("objective"):
            mean = curve.groupby("epoch")["fraction"].mean()
            ax.plot(mean.index, 100 * mean.values, marker="o", ms=2, label=objective)
        ax.set_title(threshold_label(threshold))
        ax.set_xlabel("epochs of dense training (0: initialisation)")
    axes[0, 0].set_ylabel("% of prunable weights")
    axes[0, -1].legend(frameon=False)
    save_figure(fig, path)
