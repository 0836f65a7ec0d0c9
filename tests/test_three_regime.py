"""Zhou et al.'s three-regime study (studies/three_regime.py): CKA and both barriers against direct formulas,
interpolation that keeps the mask, layer-uniform pruning's exact densities, one SAM step by hand, a population of
retrain seeds equal to them trained alone, the temperature knobs' schedules, and a small grid end to end."""
import itertools
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from torch.func import functional_call

import reproduce
from conftest import one_line_usage_error
from common.data import load_dataset
from common.data.augment import SupervisedAugment
from common.engine.loop import Trainer
from common.engine.objectives import make_objective
from common.engine.phase import Job, Phase
from common.metrics.cka import linear_cka
from common.metrics.connectivity import frankle_barrier, regimes, zhou_barrier
from common.models import build_network
from common.paths import Paths
from common.pruning.criteria import CRITERIA
from common.pruning.pools import POOLS
from common.spec import ModelSpec, spec_from_filename
from common.studies.three_regime import run as three_regime
from common.studies.three_regime.config import RegimeRun, preset_config
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
    unequal = np.array([0.1, 0.12, 0.18, 0.3, 0.25, 0.2])
    m = (unequal[0] + unequal[-1]) / 2
    assert zhou_barrier(unequal) == pytest.approx(m - unequal[np.argmax(np.abs(m - unequal))])  # their notebook
    assert frankle_barrier(unequal) == pytest.approx(0.3 - m)
    line = np.linspace(0.1, 0.3, 11)  # no barrier, unequal endpoints: +half their gap (argmax at an endpoint)
    assert zhou_barrier(line) == pytest.approx(0.1)


def test_regimes_follow_the_stated_rules():
    barrier = np.array([[-0.3, 0.0, 0.0], [0.0, -0.05, 0.0]])
    cka = np.array([[0.5, 0.9, 0.8], [0.7, 0.95, 0.6]])
    assert regimes(barrier, cka, -0.1).tolist() == [["I", "II-B", "II-A"], ["II-A", "II-B", "II-A"]]


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

SMALL = ["--preset", "demo", "--train_subset", "128", "--epochs", "2", "--save_every", "1", "--lr_milestones",
         "--densities", "0.1,0.5", "--retrain_epochs", "1", "--retrain_milestones", "--lmc_points", "3",
         "--cka_images", "64", "--knn_k", "20", "--no-progress", "--population_execution", "sequential"]


@pytest.fixture(scope="module")
def small_grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    for objective in ("supervised", "supcon"):
        three_regime.main(SMALL + ["--output_root", str(root), "--objective", objective, "--stages", "train", "prune",
                                   "retrain", "connectivity", "cka"])
    three_regime.main(SMALL + ["--output_root", str(root), "--stages", "plot"])
    return root


def test_the_grid_table_loads_with_pandas_and_covers_every_cell_and_pair(small_grid):
    grid = pd.read_csv(Paths(small_grid).study_file("digits", "three_regime", "grid.csv"))
    assert len(grid) == 2 * 2 * 2  # objectives x temperatures (epochs 1, 2) x densities, one dense seed, one pair
    assert set(grid["retrain_seeds"]) == {"1-2"} and grid["test_error"].between(0, 1).all()
    assert grid["cka_features"].between(0, 1 + 1e-9).all()
    supervised = grid[grid["objective"] == "supervised"]
    assert supervised["cka_softmax"].notna().all() and (supervised["barrier_curve"] == "train_error").all()
    for objective in ("supervised", "supcon"):
        assert Paths(small_grid).study_file("digits", "three_regime", f"phase_{objective}_epochs.png").is_file()
    path = pd.read_csv(Paths(small_grid).study_file("digits", "three_regime", "connectivity/supervised_epochs_2.csv"))
    assert sorted(path["t"].unique()) == [0.0, 0.5, 1.0] and set(path["temperature"]) == {2}
    again = three_regime.main(SMALL + ["--output_root", str(small_grid), "--objective", "supervised"])
    assert again == []  # every cell is done: nothing is trained again
    three_regime.main(SMALL + ["--output_root", str(small_grid), "--objective", "supervised", "--stages",
                               "connectivity", "--lmc_points", "5"])  # another measurement is not taken as done
    path = pd.read_csv(Paths(small_grid).study_file("digits", "three_regime", "connectivity/supervised_epochs_1.csv"))
    assert path.groupby("setting")["t"].nunique().sort_values().tolist() == [3, 5]


def test_a_population_of_retrain_seeds_equals_them_trained_alone(small_grid, tmp_path):
    three_regime.main(SMALL + ["--output_root", str(tmp_path), "--stages", "train", "prune", "retrain",
                               "--population_size", "1"])
    cfg = preset_config("demo", train_subset=128, epochs=2, save_every=1, lr_milestones=(), densities=(0.1, 0.5),
                        retrain_epochs=1, retrain_milestones=())
    grid = Grid(cfg, RegimeRun(), Paths(small_grid), load_dataset("digits").train_subset(128))
    for temperature, density, retrain_seed in itertools.product((1, 2), (0.1, 0.5), (1, 2)):
        spec = grid.retrained_spec(temperature, density, 1, retrain_seed)
        together, alone = load_member(Paths(small_grid), spec), load_member(Paths(tmp_path), spec)
        assert all(torch.equal(together[0][n], alone[0][n]) for n in alone[0]), spec.name
        assert all(torch.equal(together[1][n], alone[1][n]) for n in alone[1])
        assert together[2]["runtime"]["population_size"] == 4 and alone[2]["runtime"]["population_size"] == 1


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
