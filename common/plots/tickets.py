"""The tickets study's figures: analogues of Caron et al.'s Figure 1 (linear probes of pruned features), Figure 2
(pruning during pre-training or during transfer), Figure 3 (accuracy of re-trained tickets against the weights
remaining), Figure 4 (layerwise tickets), Figure 5 (pruning with few labels), and the natural sparsity of dense
training."""
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
    fig, axes = _grid(len(objectives))
    for ax, objective in zip(axes.flat, objectives):
        part = summary[summary["objective"] == objective]
        for (source, init), (label, colour, style) in VARIANT_STYLE.items():
            curve = part[(part["mask_source"] == source) & (part["init"] == init)]
            if curve.empty:
                continue
            _curve(ax, curve, "test_accuracy", label, colour, style)
        _density_axis(ax, part["density"])
        ax.set_title(f"masks found by {objective} pruning")
    for row in axes:
        row[0].set_ylabel("test accuracy after re-training on labels (%)")
    axes.flat[len(objectives) - 1].legend(frameon=False, fontsize=7)
    save_figure(fig, path)


def _grid(panels: int, columns: int = 4, width: float = 4.2, height: float = 3.4, sharey=True):
    """A grid of `panels` axes, at most `columns` per row; the unused ones hidden."""
    cols = min(panels, columns)
    rows = -(-panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False, sharey=sharey)
    for ax in axes.flat[panels:]:
        ax.set_visible(False)
    fig.subplots_adjust(hspace=0.5, wspace=0.3)  # room for each row's x label under the next row's titles
    return fig, axes


def _density_axis(ax, densities) -> None:
    """% of weights remaining on a log axis, decreasing to the right; every level labelled up to 5, every other one
    beyond."""
    ax.set_xscale("log")
    ticks = sorted({round(100 * d, 1) for d in densities}, reverse=True)
    ticks = ticks if len(ticks) <= 5 else ticks[::2]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.invert_xaxis()
    ax.set_xlabel("% of weights remaining (log)")


def _curve(ax, frame: pd.DataFrame, value: str, label: str, colour=None, style: str = "-") -> None:
    """Mean ± std over seeds of `value` against the density (one point per level), shaded."""
    stats = (frame.assign(level_density=frame["density"].round(6)).groupby(["level", "level_density"])
             .agg(density=("density", "mean"), mean=(value, "mean"), std=(value, "std")).fillna(0.0))
    x = 100 * stats["density"]
    line, = ax.plot(x, 100 * stats["mean"], style, color=colour, marker="o", ms=3, label=label)
    ax.fill_between(x, 100 * (stats["mean"] - stats["std"]), 100 * (stats["mean"] + stats["std"]),
                    color=line.get_color(), alpha=0.15, lw=0)


def plot_transfer(probes: pd.DataFrame, path: Path) -> None:
    """Figure 1 analogue: linear-probe accuracy of the frozen pruned features against the weights remaining, one
    panel per probe dataset and stage, one curve per pruning objective."""
    panels = list(probes.groupby(["probe_dataset", "stage"]).groups)
    stages = probes["stage"].nunique()
    fig, axes = _grid(len(panels), columns=stages, sharey=False)
    for ax, (dataset, stage) in zip(axes.flat, panels):
        part = probes[(probes["probe_dataset"] == dataset) & (probes["stage"] == stage)]
        for objective, curve in part.groupby("objective", sort=False):
            _curve(ax, curve, "accuracy", objective)
        _density_axis(ax, part["density"])
        ax.set_title(f"{dataset} labels, stage {stage} features")
        ax.set_ylabel("linear probe test accuracy (%)")
    axes.flat[stages - 1].legend(frameon=False, fontsize=7)
    save_figure(fig, path)


def plot_pruning_time(finetunes: pd.DataFrame, path: Path) -> None:
    """Figure 2 analogue: accuracy after finetuning on the other dataset, for the network pruned during
    pre-training against the dense one pruned during the finetuning, one panel per pruning objective."""
    panels = list(dict.fromkeys(zip(finetunes["objective"], finetunes["dataset"])))
    fig, axes = _grid(len(panels))
    styles = {"imp": ("pruned during pre-training (IMP mask)", "tab:blue", "-"),
              "transfer_gmp": ("pruned during transfer (global GMP)", "tab:red", "--")}
    for ax, (objective, dataset) in zip(axes.flat, panels):
        part = finetunes[(finetunes["objective"] == objective) & (finetunes["dataset"] == dataset)]
        dense = part[part["level"] == 0]
        for pruned, (label, colour, style) in styles.items():
            curve = pd.concat([dense, part[(part["pruned"] == pruned) & (part["level"] > 0)]])
            if len(curve) > len(dense):
                _curve(ax, curve, "test_accuracy", label, colour, style)
        _density_axis(ax, part["density"])
        ax.set_title(f"{objective} features finetuned on {dataset}")
    axes[0, 0].set_ylabel("test accuracy after finetuning (%)")
    axes.flat[len(panels) - 1].legend(frameon=False, fontsize=7)
    save_figure(fig, path)


def plot_layerwise(gaps: pd.DataFrame, pool_size: int, path: Path) -> None:
    """Figure 4 analogue: the winning-ticket gap (labels minus the objective, percentage points, 95 % interval)
    per pruned part of the encoder (the first N conv layers, the last N, all of them), labelled with the weights
    that level prunes, one line of points per self-supervised objective."""
    order = sorted(gaps["layers"].unique(), key=lambda label: _layers_position(label, pool_size))
    fig, ax = plt.subplots(figsize=(1.1 * len(order) + 2.4, 3.6))
    for offset, (objective, part) in enumerate(gaps.groupby("objective", sort=False)):
        part = part.set_index("layers").reindex(order).dropna(subset=["gap"])
        x = [order.index(label) + 0.1 * offset for label in part.index]
        ax.errorbar(x, 100 * part["gap"], yerr=[100 * (part["gap"] - part["low"]).fillna(0),
                                                100 * (part["high"] - part["gap"]).fillna(0)],
                    marker="o", ms=4, capsize=3, ls="none", label=objective)
    pruned = gaps.groupby("layers")["pruned"].mean()
    ax.set_xticks(range(len(order)), [f"{label}\n{int(round(pruned[label])):,} pruned" for label in order], fontsize=7)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlabel(f"conv layers pruned (of {pool_size})")
    ax.set_ylabel("label ticket − self-supervised ticket (pp)")
    ax.set_title("layerwise winning tickets")
    ax.legend(frameon=False, fontsize=7)
    save_figure(fig, path)


def _layers_position(label: str, pool_size: int) -> float:
    """'first N' at N, 'last N' just after the split it completes (pool - N), 'all' at the end."""
    kind, _, count = label.partition(" ")
    if kind == "all":
        return pool_size + 1
    return int(count) if kind == "first" else pool_size - int(count) + 0.5


def plot_few_labels(summary: pd.DataFrame, tags: list[str], path: Path) -> None:
    """Figure 5 analogue: winning tickets (IMP mask, rewind) pruned with all labels, none (RotNet), a labelled
    fraction with RotNet (S4L) or alone, and the random mask, against the weights remaining."""
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    for tag in tags:
        _curve(ax, summary[(summary["objective"] == tag) & (summary["mask_source"] == "imp")
                           & (summary["init"] == "rewind")], "test_accuracy", tag)
    random = summary[(summary["mask_source"] == "random") & (summary["init"] == "reinit")]
    random = random[random["objective"] == random["objective"].iloc[0]] if not random.empty else random
    if not random.empty:  # one copy of the shared control
        _curve(ax, random, "test_accuracy", "random mask", "tab:gray", ":")
    _density_axis(ax, summary["density"])
    ax.set_ylabel("winning-ticket accuracy on labels (%)")
    ax.set_title("pruning with few labels")
    ax.legend(frameon=False, fontsize=7)
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
