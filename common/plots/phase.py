"""Zhou et al.'s Figure 2: heatmaps over the load (density, x) and the temperature (y), regimes written in the
cells."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from common.plots import plt, save_figure

PANELS = (("test_error", "test error", "Blues"), ("normalized_test_error", "normalised test error", "Blues"),
          ("barrier", "connectivity (m − e(t*))", "Blues_r"), ("cka", "CKA", "Blues"))


def plot_phase(cells: dict[str, np.ndarray], densities, temperatures, regimes: np.ndarray, title: str,
               temperature_label: str, path: Path) -> None:
    """cells: {panel key: [T, D] grid of means}; regimes [T, D] of 'I' / 'II-A' / 'II-B', written in every
    panel's cells."""
    fig, axes = plt.subplots(1, len(PANELS), figsize=(3.9 * len(PANELS), 3.4), squeeze=False, constrained_layout=True)
    for ax, (key, label, colours) in zip(axes[0], PANELS):
        grid = cells[key]
        image = ax.imshow(grid, cmap=colours, origin="lower", aspect="auto")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
        for (row, col), regime in np.ndenumerate(regimes):
            red, green, blue, _ = image.cmap(image.norm(grid[row, col]))
            light = np.isnan(grid[row, col]) or 0.299 * red + 0.587 * green + 0.114 * blue > 0.5
            ax.text(col, row, regime, ha="center", va="center", fontsize=7, color="black" if light else "white")
        ax.set_xticks(range(len(densities)), [f"{100 * d:g}" for d in densities])
        ax.set_yticks(range(len(temperatures)), [f"{t:g}" for t in temperatures])
        ax.set_xlabel("density (% of conv weights)")
        ax.set_title(label)
    axes[0, 0].set_ylabel(temperature_label)
    fig.suptitle(title)
    save_figure(fig, path)
