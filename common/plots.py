"""Plotting: arrays or tables in, PNG files out (written atomically). Nothing here computes a metric."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from common.checkpoint import atomic_path  # noqa: E402

plt.rcParams.update({"figure.dpi": 120, "savefig.dpi": 150, "font.size": 9, "axes.spines.top": False,
                     "axes.spines.right": False})


def save_figure(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)


def write_table(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def write_history(rows: list[dict], csv_path: Path, png_path: Path) -> None:
    """Per-epoch metrics of one model as CSV, and its loss / accuracy curves per phase as one PNG."""
    frame = pd.DataFrame(rows)
    write_table(frame, csv_path)
    if frame.empty:
        return
    phases = list(dict.fromkeys(frame["phase"]))
    fig, axes = plt.subplots(2, len(phases), figsize=(3.6 * len(phases), 5), squeeze=False)
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
        for ax in (loss_ax, acc_ax):
            if ax.get_legend_handles_labels()[0]:
                ax.legend(frameon=False)
    fig.suptitle(frame["model"].iloc[0], fontsize=8)
    save_figure(fig, png_path)
