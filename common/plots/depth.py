"""Figures of the prediction-depth stage: arrays or tables in, PNG out (nothing here computes a metric)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from common.plots import plt, save_figure

PIE_COLOR, REST_COLOR = "tab:red", "tab:green"
DENSE_COLOR, PRUNED_COLOR = "tab:blue", "tab:orange"


def plot_depth_scatter(dense_mean: np.ndarray, pruned_mean: np.ndarray, pies: np.ndarray, num_probes: int,
                       xlabel: str, ylabel: str, title: str, path: Path) -> None:
    """One marker per distinct (dense, pruned) mean depth: x under the dense models, y under the pruned ones,
    PIEs red on top of the rest in green, with the identity line. Means over a few models take few distinct
    values and many examples share one, so a marker's area grows with the number of examples it stands for."""
    fig, ax = plt.subplots(figsize=(5.4, 6))
    lim = (-0.5, num_probes + 0.5)
    ax.plot(lim, lim, color="0.4", lw=1, ls="--", label="identity", zorder=1)
    groups = [(~pies, REST_COLOR, 0.45, "non-PIEs"), (pies, PIE_COLOR, 0.75, "PIEs")]
    points = [np.unique(np.stack([dense_mean[m], pruned_mean[m]], 1), axis=0, return_counts=True) for m, *_ in groups]
    largest = max([counts.max() for _, counts in points if counts.size], default=1)
    for (mask, color, alpha, name), (xy, counts) in zip(groups, points):
        ax.scatter(xy[:, 0], xy[:, 1], s=6 + 400 * counts / largest, color=color, alpha=alpha, lw=0, zorder=2,
                   label=f"{name} (n={int(mask.sum())}): mean {_mean(dense_mean[mask])} dense, "
                         f"{_mean(pruned_mean[mask])} pruned")
    ax.set(xlim=lim, ylim=lim, xlabel=xlabel, ylabel=ylabel, aspect="equal")
    ticks = range(0, num_probes + 1, max(1, num_probes // 8))
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_title(_wrap(title), fontsize=9)
    legend = ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False, fontsize=8, markerscale=1)
    for handle in legend.legend_handles[1:]:
        handle.set_sizes([20])
    ax.text(1.0, -0.1, f"marker area ∝ examples (largest: {largest})", transform=ax.transAxes, ha="right",
            va="top", fontsize=7, color="0.35")
    save_figure(fig, path)


def plot_depth_histograms(dense_depths: np.ndarray, pruned_depths: np.ndarray, pies: np.ndarray, num_probes: int,
                          pruned_name: str, title: str, path: Path) -> None:
    """Distribution of per-model depths [P, N] (pooled over models) for the non-PIEs and the PIEs, dense vs
    pruned side by side at each depth 0..L, as the fraction of (model, example) pairs."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True, layout="constrained")
    values = np.arange(num_probes + 1)
    for ax, (group, mask) in zip(axes, (("non-PIEs", ~pies), ("PIEs", pies))):
        for offset, (name, depths, color) in zip((-0.2, 0.2), (("dense", dense_depths, DENSE_COLOR),
                                                               (pruned_name, pruned_depths, PRUNED_COLOR))):
            chosen = depths[:, mask].ravel()
            share = np.bincount(chosen, minlength=num_probes + 1) / max(1, chosen.size)
            ax.bar(values + offset, share, width=0.4, color=color,
                   label=f"{name} (mean {_mean(chosen)}, {depths.shape[0]} models)")
        ax.set_title(f"{group} (n={int(mask.sum())})")
        ax.set_xlabel(f"prediction depth (0: every probe agrees, {num_probes}: the last probe disagrees)")
        ax.set_xticks(values)
        ax.legend(frameon=False, fontsize=8)
    axes[0].set_ylabel("fraction of (model, example) pairs")
    fig.suptitle(_wrap(title, 110), fontsize=9)
    save_figure(fig, path)


def plot_depth_vs_sparsity(summary: pd.DataFrame, title: str, path: Path) -> None:
    """Mean depth of PIEs (dashed) and non-PIEs (solid) against sparsity, one colour per pruning method;
    left the dense models, right the pruned ones."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True, layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for color, (pruning, part) in zip(colors, summary.groupby("pruning")):
        part = part.sort_values("sparsity")
        for ax, population in zip(axes, ("dense", "pruned")):
            for group, style, marker in (("rest", "-", "o"), ("pies", "--", "s")):
                ax.plot(part["sparsity"], part[f"depth_{population}_{group}_mean"], ls=style, marker=marker,
                        ms=4, color=color, label=f"{pruning}, {'PIEs' if group == 'pies' else 'non-PIEs'}")
    top = int(summary["num_probes"].max()) if len(summary) else 1
    for ax, population in zip(axes, ("dense models", "pruned models")):
        ax.set(xlabel="sparsity of the pruned population", title=f"depth under the {population}", xlim=(0, 1),
               ylim=(0, top))
    axes[0].set_ylabel("mean prediction depth")
    axes[1].legend(frameon=False, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(_wrap(title, 110), fontsize=9)
    save_figure(fig, path)


def _mean(values: np.ndarray) -> str:
    return f"{values.mean():.2f}" if values.size else "n/a"


def _wrap(text: str, width: int = 70) -> str:
    return "\n".join(textwrap.wrap(text, width))
