"""Figure layout: what a reader of the figures relies on being legible."""
import pandas as pd
import pytest

from common.plots import plt
from common.plots.history import history_figure
from common.plots.tickets import _density_axis


def history(epochs: dict) -> pd.DataFrame:
    """A model's history with `epochs[phase]` epochs per phase, test metrics every epoch."""
    rows = [dict(model="supervised_wrn10_1_digits_dense_s0_seed0", phase=phase, epoch=e, train_loss=1 / (e + 1),
                 train_accuracy=0.5 + e / 100, test_loss=1.2 / (e + 1), test_accuracy=0.4 + e / 100)
            for phase, n in epochs.items() for e in range(n)]
    return pd.DataFrame(rows)


def overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("epochs", [{"dense": 12}, {"encoder": 3, "head": 5}, {"finetune": 1}])
def test_curves_titles_clear_the_panel_above_and_epochs_are_whole(epochs):
    fig = history_figure(history(epochs))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = fig.get_axes()
    for loss_ax, acc_ax in zip(axes[::2], axes[1::2]):
        title = acc_ax.title.get_window_extent(renderer)
        above = [loss_ax.get_window_extent(renderer), loss_ax.xaxis.label.get_window_extent(renderer)]
        above += [t.get_window_extent(renderer) for t in loss_ax.get_xticklabels() if t.get_visible() and t.get_text()]
        assert not any(overlaps(title, box) for box in above), acc_ax.get_title()
        low, high = acc_ax.get_xlim()
        ticks = [t for t in acc_ax.get_xticks() if low <= t <= high]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    plt.close(fig)


@pytest.mark.parametrize("densities, labelled", [
    ([1.0, 0.8], ["100", "80"]),
    ([1.0, 0.8, 0.64, 0.512], ["100", "80", "64", "51.2"]),
    ([0.8 ** level for level in range(10)], ["80", "51.2", "32.8", "21", "13.4"]),  # many: every other, sparsest in
])
def test_tickets_density_axes_label_the_levels(densities, labelled):
    fig, ax = plt.subplots()
    ax.plot([100 * d for d in densities], range(len(densities)))
    _density_axis(ax, densities)
    fig.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels() if t.get_text()] == labelled
    plt.close(fig)
