"""Zhou et al.'s Figure 2: heatmaps over the load (density, x) and the temperature (y, hottest on top as their
Figure 2 draws epoch 10 on top), regimes written in the cells, the rule that drew them as the caption. Colour maps
as their notebook's: test errors Blues, connectivity and CKA Blues_r (dark = a barrier, dark = dissimilar);
Frankle's barrier (positive for a barrier) Blues beside theirs."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from common.plots import plt, save_figure

PANELS = (("test_error", "test error", "Blues"), ("normalized_test_error", "normalised test error", "Blues"),
          ("barrier", "connectivity m − e(t*)", "Blues_r"), ("barrier_frankle", "Frankle's barrier", "Blues"),
          ("cka", "CKA", "Blues_r"))
REGIME_FONT = 13


def plot_phase(cells: dict[str, np.ndarray], densities, temperatures, regimes: np.ndarray, title: str,
               temperature_label: str, caption: str, path: Path) -> None:
    """cells: {panel key: [T, D] grid of means, rows hottest first}; regimes [T, D] of 'I' / 'II-A' / 'II-B' /
    'no interval' (or those with a '?'), written in every panel's cells; caption: the rule, under the panels."""
    fig, axes = plt.subplots(1, len(PANELS), figsize=(3.9 * len(PANELS), 4.4), squeeze=False, layout="constrained")
    for ax, (key, label, colours) in zip(axes[0], PANELS):
        grid = cells[key]
        image = ax.imshow(grid, cmap=colours, origin="upper", aspect="auto")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
        for (row, col), regime in np.ndenumerate(regimes):
            red, green, blue, _ = image.cmap(image.norm(grid[row, col]))
            light = np.isnan(grid[row, col]) or 0.299 * red + 0.587 * green + 0.114 * blue > 0.5
            ax.text(col, row, regime.replace(" ", "\n"), ha="center", va="center", fontweight="bold",
                    fontsize=REGIME_FONT if len(regime) < 6 else REGIME_FONT - 4,
                    color="black" if light else "white")
        ax.set_xticks(range(len(densities)), [f"{100 * d:g}" for d in densities])
        ax.set_yticks(range(len(temperatures)), [f"{t:g}" for t in temperatures])
        ax.set_xlabel("density (% of conv weights)")
        ax.set_title(label)
    axes[0, 0].set_ylabel(f"{temperature_label} (hottest on top)")
    fig.suptitle(title)
    fig.get_layout_engine().set(h_pad=0.2)
    fig.supxlabel("\n".join(textwrap.wrap(caption, 190)), fontsize=9, ha="left", x=0.01)
    save_figure(fig, path)
