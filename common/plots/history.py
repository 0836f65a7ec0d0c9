"""Training curves of one model: loss and accuracy per phase."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.ticker import MaxNLocator

from common.plots import plt, save_figure


def plot_history(frame: pd.DataFrame, path: Path) -> None:
    """Loss (top) and accuracy (bottom) against epoch, one column per phase, train and test."""
    if not frame.empty:
        save_figure(history_figure(frame), path)


def history_figure(frame: pd.DataFrame):
    """The figure of `plot_history`. Each column shares its epoch axis, labelled once under the accuracy panel
    (the loss panel's tick labels would sit under the accuracy title), with whole epochs as ticks."""
    phases = list(dict.fromkeys(frame["phase"]))
    fig, axes = plt.subplots(2, len(phases), figsize=(3.6 * len(phases), 5), squeeze=False, sharex="col",
                             layout="constrained")
    for col, phase in enumerate(phases):
        part = frame[frame["phase"] == phase]
        loss_ax, acc_ax = axes[0, col], axes[1, col]
        loss_ax.plot(part["epoch"] + 1, part["train_loss"], label="train")
        if part["test_loss"].notna().any():
            loss_ax.plot(part["epoch"] + 1, part["test_loss"], "o-", ms=2, label="test")
        loss_ax.set_title(f"{phase}: loss")
        if part["train_accuracy"].notna().any():
            acc_ax.plot(part["epoch"] + 1, part["train_accuracy"], label="train")
        if part["test_accuracy"].notna().any():
            acc_ax.plot(part["epoch"] + 1, part["test_accuracy"], "o-", ms=2, label="test")
        acc_ax.set_title(f"{phase}: accuracy")
        acc_ax.set_xlabel("epoch")
        acc_ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        for ax in (loss_ax, acc_ax):
            if ax.get_legend_handles_labels()[0]:
                ax.legend(frameon=False)
    fig.suptitle(frame["model"].iloc[0], fontsize=8)
    return fig
