"""Zhou et al.'s three-regime study (studies/three_regime.py): CKA and both barriers against direct formulas,
interpolation that keeps the mask, layer-uniform pruning's exact densities, one SAM step by hand, a population of
retrain seeds equal to them trained alone, the temperature knobs' schedules, and a small grid end to end."""
import itertools
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from torch.func import functional_call

import reproduce
from conftest import one_line_usage_error
from common.data import load_dataset
from common.data.augment import SupervisedAugment
from common.engine.loop import Trainer
from common.engine.objectives import make_objective
from common.engine.phase import Job, Phase
from common.errors import DataError
from common.metrics.cka import linear_cka
from common.metrics.connectivity import cell_interval, frankle_barrier, regimes, zhou_barrier
from common.models import build_network
from common.paths import Paths
from common.pruning.criteria import CRITERIA
from common.pruning.pools import POOLS
from common.spec import ModelSpec, spec_from_filename
from common.studies.three_regime import run as three_regime
from common.studies.three_regime.config import RUN_PRESETS, RegimeRun, preset_config
from common.studies.three_regime.grid import Grid, interpolate
from common.zoo import load_member


# ---- metrics ----------------------------------------------------------------------------------------------

def gram_cka(x, y):
    """Kornblith et al.'s Gram form with linear kernels: tr(K_c L_c) / sqrt(tr(K_c K_c) tr(L_c L_c))."""
    n = len(x)
    centre = torch.eye(n, dtype=torch.float64) - 1.0 / n
    k, l = centre @ (x @ x.T) @ centre, centre @ (y @ y.T) @ centre
    return torch.trace(k @ l) / torch.sqrt(torch.trace(k @ k) * torch.trace(l @ l))


def test_cka_is_one_on_itself_invariant_to_rotation_and_scale_and_equals_the_gram_form():
    torch.manual_seed(0)
    x, y = torch.randn(50, 8, dtype=torch.float64), torch.randn(50, 5, dtype=torch.float64)
    rotation, _ = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64))
    assert float(linear_cka(x, x)) == pytest.approx(1.0)
    assert float(linear_cka(x @ rotation * 3.7, y)) == pytest.approx(float(linear_cka(x, y)))
    assert float(linear_cka(x, y)) == pytest.approx(float(gram_cka(x, y)))
    assert linear_cka(torch.stack([x, x]), torch.stack([x, y[:, :5].repeat(1, 2)[:, :8]])).shape == (2,)


def test_both_barriers_on_flat_bumped_and_unequal_curves():
    flat = np.full(11, 0.2)
    assert zhou_barrier(flat) == 0 and frankle_barrier(flat) == 0
    bump = flat.copy()
    bump[5] += 0.3
    assert zhou_barrier(bump) == pytest.approx(-0.3) and frankle_barrier(bump) == pytest.approx(0.3)
    assert zhou_barrier(bump, within_range_zero=True) == pytest.approx(-0.3)  # a real barrier stays theirs
    unequal = np.array([0.1, 0.12, 0.18, 0.3, 0.25, 0.2])
    m = (unequal[0] + unequal[-1]) / 2
    assert zhou_barrier(unequal) == pytest.approx(m - unequal[np.argmax(np.abs(m - unequal))])  # their notebook
    assert frankle_barrier(unequal) == pytest.approx(0.3 - m)
    line = np.linspace(0.1, 0.3, 11)  # no barrier, unequal endpoints: +half their gap (argmax at an endpoint)
    assert zhou_barrier(line) == pytest.approx(0.1)


def test_the_rules_barrier_does_not_take_its_sign_from_which_end_a_connected_path_starts():
    step = np.array([0.05] + [0.06] * 9 + [0.07])  # inside the endpoints' range: connected
    assert zhou_barrier(step) == pytest.approx(0.01) and zhou_barrier(step[::-1]) == pytest.approx(-0.01)  # theirs
    assert zhou_barrier(step, True) == 0 and zhou_barrier(step[::-1], True) == 0
    assert frankle_barrier(step) == pytest.approx(0.01) == frankle_barrier(step[::-1])
    dip = step.copy()
    dip[4] = 0.01  # leaves the range downwards: theirs, positive, either way round
    assert zhou_barrier(dip, True) == pytest.approx(0.05) == zhou_barrier(dip[::-1], True)
    batch = np.stack([step, step[::-1], dip])
    assert zhou_barrier(batch, True).tolist() == pytest.approx([0.0, 0.0, 0.05])


def test_regimes_follow_the_stated_rules():
    # rows hottest first; columns loads. I: the barrier's interval below -0.1; II-B: CKA interval above the
    # interval of the column's hottest regime-II cell
    barrier_high = np.array([[-0.30, 0.00, 0.00], [-0.05, -0.05, 0.00], [-0.20, 0.00, np.nan]])
    cka_low = np.array([[0.50, 0.90, 0.80], [0.70, 0.95, 0.81], [0.60, 0.91, 0.99]])
    cka_high = cka_low + 0.02
    labels = regimes(barrier_high, cka_low, cka_high, -0.1)
    assert labels.tolist() == [["I", "II-A", "II-A"], ["II-A", "II-B", "II-A"], ["I", "II-A", "no interval"]]
    # the split runs down a density column, never across a temperature row: equal columns, equal labels
    same = np.repeat(np.array([[0.90], [0.95], [0.99]]), 3, axis=1)
    assert (regimes(np.zeros((3, 3)), same - 0.01, same + 0.01) == np.array([["II-A"], ["II-B"], ["II-B"]])).all()


PAIRS_OF_3 = np.array([[1, 2], [1, 3], [2, 3]])


def test_a_cells_interval_is_the_jackknife_over_its_dense_and_its_retrain_seeds():
    values = np.array([-0.20, -0.22, -0.21, -0.10, -0.12, -0.11, -0.15, -0.16, -0.14])
    dense, pairs = np.repeat([1, 2, 3], 3), np.tile(PAIRS_OF_3, (3, 1))
    mean, low, high = cell_interval(values, dense, pairs)

    def jackknife_variance(leave_one_out):
        loo = np.array(leave_one_out)
        return (len(loo) - 1) / len(loo) * ((loo - loo.mean()) ** 2).sum()

    without_dense = [values[dense != s].mean() for s in (1, 2, 3)]
    without_retrain = [values[(pairs != r).all(1)].mean() for r in (1, 2, 3)]  # every pair holding r dropped
    half = stats.t.ppf(0.975, 2) * np.sqrt(jackknife_variance(without_dense) + jackknife_variance(without_retrain))
    assert mean == pytest.approx(values.mean()) and (low, high) == pytest.approx((mean - half, mean + half))
    assert np.isnan(cell_interval(values[:6], dense[:6], pairs[:6])[1:]).all()  # 2 dense seeds: no interval
    two_retrain = np.array([[1, 2]] * 3)
    assert np.isnan(cell_interval(values[:3], [1, 2, 3], two_retrain)[1:]).all()  # 2 retrain seeds: none either
    with_nan = values.copy()
    with_nan[0] = np.nan  # a collapsed network's CKA: left out of every mean
    assert cell_interval(with_nan, dense, pairs)[0] == pytest.approx(np.nanmean(with_nan))
    assert np.isfinite(cell_interval(with_nan, dense, pairs)[1:]).all()


def simulate_cells(rng, cells: int, dense: int, retrain: int, carrier: str) -> tuple:
    """Pair barriers of `cells` cells whose true mean is 0, their spread carried by `carrier`: 'dense' (a dense
    seed's effect, normal), 'dense-skewed' (a centred exponential with its long tail toward deep barriers, as a
    barrier bounded near 0 has), 'retrain' (a retrain seed's effect shared by every dense seed: one data order)
    (with a tenth of the rest) or 'all' (those two, each re-training's own effect shared by its pairs, and a pair's
    own noise, equal sds).
    -> ([cells, pairs] values, the pairs' dense seeds, their [pairs, 2] retrain seeds)."""
    a, b = np.triu_indices(retrain, 1)
    sd = {"dense": (1, 0, 0), "dense-skewed": (0, 0, 0), "retrain": (0, 1, 0.1), "all": (1, 1, 1)}[carrier]
    dense_effect = sd[0] * rng.normal(0, 0.03, (cells, dense, 1))
    if carrier == "dense-skewed":
        dense_effect = 0.03 - rng.exponential(0.03, (cells, dense, 1))
    member = sd[1] * rng.normal(0, 0.03, (cells, 1, retrain)) + sd[2] * rng.normal(0, 0.03, (cells, dense, retrain))
    noise = sd[2] * rng.normal(0, 0.03, (cells, dense, len(a)))
    pairs = dense_effect + member[..., a] + member[..., b] + noise
    return pairs.reshape(cells, -1), np.repeat(np.arange(dense), len(a)), np.tile(np.stack([a, b], 1), (dense, 1))


@pytest.mark.parametrize("carrier", ["dense", "dense-skewed", "retrain", "all"])
def test_a_false_regime_verdict_is_rare_at_the_study_presets_seed_counts(carrier):
    """Regime I needs the interval's upper end below the threshold: where the true mean barrier equals it, that
    verdict must come at most 2.5 % of the time with the study's 3 dense x 3 retrain seeds, whichever kind of seed
    carries the spread (exactly 2.5 % where one kind carries it all; far rarer when both do, the summed variances
    being conservative). The jackknife over one kind of seed alone, or the 9 pairs taken as independent, decide
    far more often where the spread is not where they look. II-B needs two CKA intervals apart: rarer still where
    two cells' CKAs are equal."""
    rng = np.random.default_rng(0)
    preset = RegimeRun(**RUN_PRESETS["study"])
    dense, retrain = len(preset.dense_seeds), len(preset.retrain_seeds)
    values, seeds, pairs = simulate_cells(rng, 4000, dense, retrain, carrier)
    intervals = np.stack(cell_interval(values, seeds, pairs), -1)
    assert np.mean(intervals[:, 2] < 0) < 0.025 + 3 * np.sqrt(0.025 * 0.975 / 4000)
    by_dense = values.reshape(len(values), dense, -1).mean(-1)  # over dense seeds alone: a t over their means
    dense_only = stats.ttest_1samp(by_dense, 0.0, axis=1, alternative="less").pvalue < 0.025
    naive = stats.ttest_1samp(values, 0.0, axis=1, alternative="less").pvalue < 0.025
    assert naive.mean() > 0.05 and (dense_only.mean() > 0.4 if carrier == "retrain" else True)
    other = np.stack(cell_interval(simulate_cells(rng, 4000, dense, retrain, carrier)[0], seeds, pairs), -1)
    assert np.mean(intervals[:, 1] > other[:, 2]) < 0.025


# Zhou et al.'s Figure 2 (PreResNet-20, CIFAR-10), read back from their repository's PNGs (visualization/
# earlystop_linear_mc.png, earlystop_cka_similairty.png: each cell's colour matched to its colour bar, about
# +-0.005): every other checkpoint epoch (rows, hottest first) x their nine densities (columns).
FIGURE2_EPOCHS = (10, 30, 50, 70, 90, 110, 130, 150)
FIGURE2_DENSITIES = (5, 6, 7, 8, 10, 14, 20, 40, 80)
FIGURE2_BARRIER = np.array([
    [-0.099, -0.043, -0.043, -0.027, -0.014, -0.005, -0.003, -0.003, -0.014],
    [-0.177, -0.075, -0.027, -0.027, -0.003, -0.000, -0.000, -0.000, -0.003],
    [-0.182, -0.102, -0.027, -0.011, -0.005, -0.000, -0.000, -0.000, -0.000],
    [-0.187, -0.093, -0.027, -0.008, -0.005, -0.000, -0.000, -0.000, -0.000],
    [-0.505, -0.361, -0.123, -0.024, -0.014, -0.000, -0.000, -0.000, -0.000],
    [-0.639, -0.582, -0.513, -0.297, -0.061, -0.008, -0.000, -0.000, -0.000],
    [-0.650, -0.663, -0.639, -0.564, -0.149, -0.027, -0.000, -0.000, -0.000],
    [-0.644, -0.657, -0.636, -0.572, -0.192, -0.032, -0.005, -0.000, -0.000]])
FIGURE2_CKA = np.array([
    [0.911, 0.922, 0.929, 0.936, 0.945, 0.954, 0.962, 0.976, 0.988],
    [0.913, 0.927, 0.938, 0.946, 0.960, 0.970, 0.975, 0.983, 0.990],
    [0.910, 0.925, 0.939, 0.952, 0.967, 0.975, 0.980, 0.986, 0.992],
    [0.908, 0.923, 0.944, 0.955, 0.966, 0.975, 0.981, 0.988, 0.993],
    [0.893, 0.906, 0.926, 0.946, 0.962, 0.975, 0.984, 0.990, 0.993],
    [0.886, 0.895, 0.905, 0.917, 0.944, 0.969, 0.982, 0.992, 0.993],
    [0.885, 0.889, 0.898, 0.906, 0.934, 0.961, 0.981, 0.992, 0.993],
    [0.884, 0.889, 0.897, 0.907, 0.928, 0.957, 0.980, 0.993, 0.993]])
READING = 0.005  # they publish no intervals: the reading error stands in for one


def test_the_rule_draws_their_figure_2_where_it_is_unambiguous():
    """Their regime I corner (past the learning-rate drop at epoch 80, density <= 10 %), II-A at the hottest
    checkpoint of every load and II-B at the cold end of the high loads (below their dashed line, which runs from
    about epoch 90 at 9 % to epoch 65 at 80 %: lowering the temperature at a fixed load crosses it from II-A to
    II-B, their Figure 1's arrow). Between epochs 20 and 80 at 7-40 % their CKA has already risen 0.01-0.03 above
    epoch 10 and the rule says II-B where they draw II-A; at 5 % before the drop their barriers (-0.18 to -0.25)
    are regime-I deep where they draw II-A (docs/three_regime.md)."""
    labels = regimes(FIGURE2_BARRIER + READING, FIGURE2_CKA - READING, FIGURE2_CKA + READING, -0.1)
    at = {(e, d): labels[i, j] for i, e in enumerate(FIGURE2_EPOCHS) for j, d in enumerate(FIGURE2_DENSITIES)}
    corner = [(e, d) for e in FIGURE2_EPOCHS for d in FIGURE2_DENSITIES
              if (e >= 90 and d <= 7) or (e >= 110 and d == 8) or (e >= 130 and d == 10)]
    assert {at[c] for c in corner} == {"I"} and len(corner) == 17
    assert {at[10, d] for d in FIGURE2_DENSITIES} == {"II-A"}
    assert {at[e, d] for e in FIGURE2_EPOCHS if e >= 90 for d in (20, 40)} == {"II-B"}
    assert "I" not in {at[e, d] for e in FIGURE2_EPOCHS for d in FIGURE2_DENSITIES if d >= 14}


# ---- pruning and interpolation ----------------------------------------------------------------------------

def test_layer_uniform_pruning_keeps_each_conv_layer_at_the_density():
    network = build_network("preresnet20", "supervised")
    pool = {n: p.detach()[None] for n, p in network.named_parameters() if n in POOLS["encoder_convs"](network)}
    assert len(pool) == 19 + 2  # PreResNet-20: 19 convs and two 1x1 shortcuts; never the classifier
    masks = CRITERIA["layerwise"](pool, [0.95], [0])
    for name, mask in masks.items():
        assert int(mask.sum()) == mask.numel() - round(0.95 * mask.numel()), name


def test_interpolation_keeps_the_shared_mask_zeros():
    torch.manual_seed(0)
    mask = torch.rand(4, 4) > 0.5
    a = {"w": torch.randn(4, 4) * mask, "n": torch.tensor(3)}
    b = {"w": torch.randn(4, 4) * mask, "n": torch.tensor(5)}
    for t in np.linspace(0, 1, 11):
        point = interpolate(a, b, float(t))
        assert bool((point["w"][~mask] == 0).all()) and int(point["n"]) == 3
    assert torch.allclose(interpolate(a, b, 0.25)["w"], 0.75 * a["w"] + 0.25 * b["w"])


# ---- SAM ----------------------------------------------------------------------------------------------

def hand_sam(network, images, labels, rho, lr, wd, adaptive=False):
    """w1 = w0 - lr (g(w0 + e) + wd w0), e = rho g0 / |g0| (ASAM: rho w0^2 g0 / |w0 g0|) (SGD's first step: its
    momentum buffer is that gradient), the BatchNorm statistics of the first pass only. -> (weights, buffers)."""
    params = {n: p.detach().clone().requires_grad_(True) for n, p in network.named_parameters()}
    buffers = {n: b.clone() for n, b in network.named_buffers()}
    loss = torch.nn.functional.cross_entropy(functional_call(network, (params, buffers), (images,)), labels)
    grads = torch.autograd.grad(loss, list(params.values()))
    scale = {n: p.detach().abs() if adaptive else torch.ones_like(p) for n, p in params.items()}
    norm = torch.sqrt(sum((scale[n] * g).square().sum() for n, g in zip(params, grads)))
    moved = {n: (p + rho * scale[n] ** 2 * g / norm).detach().requires_grad_(True)
             for (n, p), g in zip(params.items(), grads)}
    second_pass = {n: b.clone() for n, b in buffers.items()}
    loss = torch.nn.functional.cross_entropy(functional_call(network, (moved, second_pass), (images,)), labels)
    grads = torch.autograd.grad(loss, list(moved.values()))
    return {n: p.detach() - lr * (g + wd * p.detach()) for (n, p), g in zip(params.items(), grads)}, buffers


@pytest.mark.parametrize("adaptive", [False, True])
def test_one_sam_step_equals_the_two_step_update_by_hand_for_each_member(tmp_path, float64, adaptive):
    data = load_dataset("digits")
    data = replace(data, train_images=data.train_images[:32], train_labels=data.train_labels[:32],
                   test_images=data.test_images[:8], test_labels=data.test_labels[:8])
    rho, lr, wd = 0.05, 0.1, 1e-4
    augment = SupervisedAugment(padding=0, vertical_flip=0.0, horizontal_flip=0.0)  # the batch is the images
    names = tuple(n for n, _ in build_network("wrn10_1", "supervised").named_parameters())
    phase = Phase("train", make_objective("supervised"), 1, 32, lr, momentum=0.9, weight_decay=wd, trainable=names,
                  augment=augment, optimizer="sam", sam_rho=rho, sam_adaptive=adaptive, evaluate=False)

    def network(seed):
        torch.manual_seed(seed)
        return build_network("wrn10_1", "supervised")

    specs = [ModelSpec("supervised", "wrn10_1", "digits", "dense", 0.0, s) for s in (0, 1)]
    job = Job(specs, [phase], lambda: [network(0), network(1)], {}, [{}, {}])
    run = RegimeRun(progress=False, population_execution="sequential")
    state = Trainer(job, data, torch.device("cpu"), run, tmp_path / "s.pt").fit()
    images = data.normalize(augment.apply(data.train_images, augment.sample(32, 8, torch.Generator())))
    for member, seed in enumerate((0, 1)):  # each member's ascent uses its own gradient norm
        weights, buffers = hand_sam(network(seed), images, data.train_labels, rho, lr, wd, adaptive)
        for name, expected in weights.items():
            assert torch.allclose(state.population.params[name][member].detach(), expected, atol=1e-10), name
        for name, expected in buffers.items():
            if expected.is_floating_point():
                assert torch.allclose(state.population.buffers[name][member], expected, atol=1e-10), name


# ---- the CPU recipe: smaller images ------------------------------------------------------------------------

def test_image_size_averages_by_area_once_and_names_the_models_it_shapes():
    data = load_dataset("digits")
    small = data.resized(4)
    blocks = data.train_images.float().unflatten(2, (4, 2)).unflatten(4, (4, 2)).mean(dim=(3, 5))
    assert small.train_images.shape[-2:] == (4, 4) and small.test_images.shape[-2:] == (4, 4)
    assert small.train_images.dtype == torch.uint8 and torch.equal(small.train_images, blocks.round().to(torch.uint8))
    assert data.resized(0) is data and data.resized(8) is data
    with pytest.raises(DataError, match="--image_size 16"):
        data.resized(16)
    assert "image_size" not in preset_config("demo").recipe() and preset_config("demo", image_size=4).recipe()[
        "image_size"] == 4  # a model of another image size is another model; the stored ones keep their recipe


# ---- the temperature knobs ----------------------------------------------------------------------------------

def test_each_knob_trains_the_dense_run_it_names():
    data = load_dataset("digits").train_subset(128)
    run = RegimeRun()
    epochs = Grid(preset_config("demo", epochs=6, save_every=2), run, Paths(), data)
    assert epochs.cfg.temperatures() == (2, 4, 6)
    assert epochs.dense_phase(6).snapshot_steps == (2 * 2, 4 * 2)  # 128 images at batch 64: 2 steps per epoch
    batch = Grid(preset_config("demo", knob="batch_size", batch_sizes=(16, 64), iterations=40), run, Paths(), data)
    small = batch.dense_phase(16)
    assert (small.batch_size, small.drop_last, small.epochs, small.milestones) == (16, True, 5, (2, 4))
    assert small.steps_per_epoch(128) * small.epochs == 40 and batch.dense_phase(64).epochs == 20
    sam = Grid(preset_config("demo", knob="sam_rho", sam_rhos=(0.0, 0.2)), run, Paths(), data)
    assert (sam.dense_phase(0.2).optimizer, sam.dense_phase(0.2).sam_rho) == ("sam", 0.2)
    spec = sam.retrained_spec(0.2, 0.05, 1, 2)
    assert spec_from_filename(spec.name + "_model.safetensors") is None  # supervised models are one file
    assert spec_from_filename(spec.name + ".safetensors").knobs == (("knob", "rho"), ("temperature", "0.2"),
                                                                     ("dense", "1"))


# ---- a small grid end to end --------------------------------------------------------------------------------

SMALL = ["--preset", "demo", "--train_subset", "128", "--batch_size", "16", "--retrain_batch_size", "16", "--epochs",
         "2", "--save_every", "1", "--lr_milestones",
         "--densities", "0.1,0.5", "--retrain_epochs", "1", "--retrain_milestones", "--lmc_points", "3",
         "--cka_images", "64", "--knn_k", "20", "--no-progress", "--population_execution", "sequential"]
SEEDS = ["--index_start", "1", "--index_end", "3", "--retrain_seeds", "1", "2", "3"]


@pytest.fixture(scope="module")
def small_grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    for objective in ("supervised", "supcon"):  # 3 dense x 3 retrain seeds: an interval per cell
        three_regime.main(SMALL + SEEDS + ["--output_root", str(root), "--objective", objective, "--stages", "train",
                                           "prune", "retrain", "connectivity", "cka"])
    three_regime.main(SMALL + SEEDS + ["--output_root", str(root), "--stages", "plot"])
    return root


def test_the_grid_table_loads_with_pandas_and_covers_every_cell_and_pair(small_grid):
    grid = pd.read_csv(Paths(small_grid).study_file("digits", "three_regime", "grid.csv"))
    assert len(grid) == 2 * 2 * 2 * 3 * 3  # objectives x temperatures (epochs 1, 2) x densities x dense seeds x pairs
    assert set(grid["retrain_seeds"]) == {"1-2", "1-3", "2-3"} and grid["test_error"].between(0, 1).all()
    assert set(grid["regime"]) <= {"I", "II-A", "II-B", "no interval"}  # read back as strings, never NaN
    assert set(grid.loc[grid["objective"] == "supcon", "regime"]) <= {"I", "II-A", "II-B"}  # none at chance
    assert (grid.groupby(["objective", "temperature", "density"])["regime"].nunique() == 1).all()  # a cell's own
    assert grid["cka_features"].between(0, 1 + 1e-9).all()
    supervised = grid[grid["objective"] == "supervised"]
    assert supervised["cka_softmax"].notna().all() and (supervised["barrier_curve"] == "train_error").all()
    for objective in ("supervised", "supcon"):
        assert Paths(small_grid).study_file("digits", "three_regime", f"phase_{objective}_epochs.png").is_file()
    path = pd.read_csv(Paths(small_grid).study_file("digits", "three_regime", "connectivity/supervised_epochs_2.csv"))
    assert sorted(path["t"].unique()) == [0.0, 0.5, 1.0] and set(path["temperature"]) == {2}
    again = three_regime.main(SMALL + SEEDS + ["--output_root", str(small_grid), "--objective", "supervised"])
    assert again == []  # every cell is done: nothing is trained again
    three_regime.main(SMALL + ["--output_root", str(small_grid), "--objective", "supervised", "--stages",
                               "connectivity", "--lmc_points", "5"])  # another measurement is not taken as done
    path = pd.read_csv(Paths(small_grid).study_file("digits", "three_regime", "connectivity/supervised_epochs_1.csv"))
    assert path.groupby("setting")["t"].nunique().sort_values().tolist() == [3, 5]


def test_each_cell_has_its_means_intervals_and_regime_by_the_stated_rule(small_grid):
    cells = pd.read_csv(Paths(small_grid).study_file("digits", "three_regime", "cells.csv"))
    assert len(cells) == 2 * 2 * 2 and (cells["pairs"] == 9).all() and (cells["dense_seeds"] == 3).all()
    assert (cells["retrain_seeds"] == 3).all() and cells["at_chance"].between(0, 9).all()
    assert cells.loc[cells["objective"] == "supcon", ["barrier_low", "cka_low"]].notna().all().all()
    for name in ("barrier", "cka"):
        bounded = cells[cells[f"{name}_low"].notna()]  # too few pairs left (re-trainings at chance): no interval
        assert (bounded[f"{name}_low"] <= bounded[name]).all() and (bounded[name] <= bounded[f"{name}_high"]).all()
    grid = pd.read_csv(Paths(small_grid).study_file("digits", "three_regime", "grid.csv"))
    for objective, column in (("supervised", "cka_softmax"), ("supcon", "cka_features")):
        at = (grid["objective"] == objective) & (grid["temperature"] == 1) & (grid["density"] == 0.1)
        pairs, cell = grid[at], cells[(cells["objective"] == objective) & (cells["temperature"] == 1)
                                      & (cells["density"] == 0.1)]
        measured = pairs.where(pairs["at_chance"] == 0)  # a pair holding a collapsed re-training measures nothing
        expected = cell_interval(measured[column], pairs["dense_seed"],
                                 pairs["retrain_seeds"].str.split("-", expand=True).astype(int).to_numpy())
        assert cell["pairs_left_out"].item() == (pairs["at_chance"] > 0).sum()
        assert (cell["cka"].item(), cell["cka_low"].item(), cell["cka_high"].item()) == pytest.approx(expected,
                                                                                                      nan_ok=True)
    assert cell["barrier"].item() == pytest.approx(pairs["barrier_robust"].mean())  # SupCon: every pair
    assert cell["cka_low"].item() < cell["cka_high"].item()
    for objective, column in (("supervised", "cka_softmax"), ("supcon", "cka_features")):
        mine = cells[cells["objective"] == objective]
        assert mine["temperature"].tolist() == [1, 1, 2, 2]  # hottest (fewest epochs) first, as the figure's rows
        assert set(mine["cka_column"]) == {column}
        grids = {n: mine[n].to_numpy().reshape(2, 2) for n in ("barrier_high", "cka_low", "cka_high", "regime")}
        assert (regimes(grids["barrier_high"], grids["cka_low"], grids["cka_high"], -0.1) == grids["regime"]).all()
    verdict = np.where(cells["barrier_high"].isna(), "TOO FEW SEEDS", np.where(
        cells["barrier_high"] < -0.1, "TRUE", np.where(cells["barrier_low"] > -0.1, "FALSE", "UNDECIDED")))
    assert (cells["regime_I"] == verdict).all() and ((cells["regime"] == "I") == (verdict == "TRUE")).all()


def test_a_population_of_retrain_seeds_equals_them_trained_alone(small_grid, tmp_path):
    three_regime.main(SMALL + ["--output_root", str(tmp_path), "--stages", "train", "prune", "retrain",
                               "--population_size", "1"])
    cfg = preset_config("demo", train_subset=128, batch_size=16, retrain_batch_size=16, epochs=2, save_every=1,
                        lr_milestones=(), densities=(0.1, 0.5),
                        retrain_epochs=1, retrain_milestones=())
    grid = Grid(cfg, RegimeRun(), Paths(small_grid), load_dataset("digits").train_subset(128))
    for temperature, density, retrain_seed in itertools.product((1, 2), (0.1, 0.5), (1, 2)):
        spec = grid.retrained_spec(temperature, density, 1, retrain_seed)
        together, alone = load_member(Paths(small_grid), spec), load_member(Paths(tmp_path), spec)
        assert all(torch.equal(together[0][n], alone[0][n]) for n in alone[0]), spec.name
        assert all(torch.equal(together[1][n], alone[1][n]) for n in alone[1])
        assert together[2]["runtime"]["population_size"] == 6 and alone[2]["runtime"]["population_size"] == 1


@pytest.mark.parametrize("flags, says", [
    (["--study", "three_regime", "--save_every", "4"], "--save_every 4: must divide --epochs 6"),
    (["--study", "three_regime", "--retrain_seeds", "1"], "--retrain_seeds 1"),
    (["--study", "three_regime", "--knob", "temperature"], "--knob"),
    (["--study", "three_regime", "--stages", "plots"], "--stages plots"),
    (["--study", "three_regime", "--index_start", "3", "--index_end", "2"], "--index_start 3 --index_end 2: need"),
])
def test_bad_grid_flags_get_one_line_and_exit_2(tmp_path, capsys, flags, says):
    assert says in one_line_usage_error(capsys, reproduce.main, [*flags, "--output_root", str(tmp_path)])
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("flags, objectives", [
    (["--preset", "study"], ["supervised"]),  # SupCon's grid would add about 2 h on 2 cores
    (["--preset", "study", "--objectives", "supervised", "supcon"], ["supervised", "supcon"]),
    (["--preset", "demo"], ["supervised", "supcon"]),
])
def test_each_preset_runs_its_objectives_unless_told(tmp_path, capsys, flags, objectives):
    reproduce.main(["--study", "three_regime", *flags, "--dry_run", "--output_root", str(tmp_path)])
    train = capsys.readouterr().out.split("array 2")[0]
    assert [o for o in ("supervised", "supcon") if f"--objective {o} --stages train" in train] == objectives
    assert not tmp_path.exists() or not any(tmp_path.iterdir())
