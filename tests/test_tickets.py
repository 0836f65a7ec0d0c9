"""Caron et al.'s tickets (studies/tickets.py): IMP's exact densities and pool, late rewinding (weights, learning
rate and data position of the rewind point), the controls' masks and inits, natural sparsity, resuming a killed
level bit for bit, and the study end to end on a small digits run."""
import signal
from dataclasses import replace

import pandas as pd
import pytest
import torch

import reproduce
from conftest import one_line_usage_error
from common.data import load_dataset
from common.errors import Preempted
from common.engine.phase import Job
from common.metrics.natural_sparsity import natural_sparsity
from common.models import build_network
from common.paths import Paths
from common.pruning.criteria import natural_random_masks
from common.pruning.masks import Masks
from common.stage import train_populations
from common.studies.tickets import run as tickets
from common.studies.tickets.config import TicketsRun, preset_config
from common.studies.tickets.imp import Trunk, imp_masks, trunk_spec
from common.studies.tickets.retrain import Tickets, ticket_spec
from common.zoo import load_member

SEEDS = [0, 1]
# 256 digits at batch 64: 4 steps per epoch, 3 epochs, the rate halving at epoch 1, rewinding to epoch 2
SMALL = dict(train_subset=256, epochs=3, batch_size=64, lr_milestones=(1,), rewind="2ep")
RUN = TicketsRun(preset="demo", progress=False, checkpoint_every=1, population_size=8, curves=False)


def small_trunk(root, objective="supervised", **overrides):
    cfg = preset_config("demo", objective=objective, **{**SMALL, **overrides})
    data = load_dataset("digits").train_subset(cfg.train_subset)
    return Trunk(cfg, Paths(root), len(data.train_labels), data.num_classes, data.image_size), data


def state_dir(trunk):
    return trunk.paths.state_dir(trunk.cfg.dataset, trunk.cfg.objective, "tickets")


def train(trunk, data, levels):
    jobs = trunk.jobs(SEEDS, levels, 8, state_dir(trunk))
    train_populations(jobs, data, torch.device("cpu"), RUN, trunk.paths, state_dir(trunk), "imp")
    return [job for job, _ in jobs]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Levels 0-2 of supervised IMP for seeds 0-1 on 256 digits."""
    trunk, data = small_trunk(tmp_path_factory.mktemp("imp"))
    train(trunk, data, 2)
    return trunk, data


# ---- IMP ----------------------------------------------------------------------------------------------

def test_density_after_k_levels_is_0_8_to_the_k_of_the_pool_exactly_and_masks_only_shrink():
    torch.manual_seed(0)
    pool = {"a": torch.randn(2, 64, 3, 3, 3), "b": torch.randn(2, 10, 64)}
    size = sum(t[0].numel() for t in pool.values())
    masks = None
    for level in range(1, 9):
        weights = {n: torch.randn_like(t) for n, t in pool.items()}  # whatever training did in between
        new = imp_masks(weights, masks, level, 0.2)
        for member in range(2):
            assert new.member_pruned(member) == round((1 - 0.8 ** level) * size)
            if masks is not None:
                assert all(bool((new[n][member] <= masks[n][member]).all()) for n in pool)
        masks = new


def test_saved_levels_keep_the_head_batchnorm_and_biases_dense(trained):
    trunk, _ = trained
    network = build_network("wrn10_1", "supervised")
    convs = {f"{m}.weight" for m, module in network.named_modules() if isinstance(module, torch.nn.Conv2d)}
    assert set(trunk.pool) == convs
    size = sum(p.numel() for n, p in network.named_parameters() if n in convs)
    for level in (1, 2):
        for seed in SEEDS:
            state, masks, meta = load_member(trunk.paths, trunk_spec(trunk.cfg, level, seed))
            assert set(masks) == convs and set(meta["layer_sparsity"]) == convs
            assert sum(int(m.sum()) for m in masks.values()) == round(0.8 ** level * size)
            assert all(bool((state[n][~masks[n]] == 0).all()) for n in masks)  # pruned weights stayed zero
            dense = [n for n in state if n not in convs and "running" not in n and "num_batches" not in n]
            assert dense and all(int((state[n] != 0).sum()) > 0.5 * state[n].numel() for n in dense), dense


def test_rewound_weights_are_the_rewind_point_where_the_mask_is_on_and_zero_elsewhere(trained):
    trunk, _ = trained
    assert trunk.jobs(SEEDS, 2, 8, state_dir(trunk)) == []  # every level is finished
    job = Job(specs=[trunk_spec(trunk.cfg, 2, s) for s in SEEDS], phases=[trunk.phase()], config={}, recipes=[{}, {}],
              make_networks=lambda: trunk.networks(SEEDS))
    state = trunk.rewound(2, job, torch.device("cpu"))
    for i, seed in enumerate(SEEDS):
        point = trunk.rewind_point(seed)
        masks = load_member(trunk.paths, trunk_spec(trunk.cfg, 2, seed))[1]  # level 2's masks are the same
        for name, param in state.population.params.items():
            expected = point["tensors"][name] * masks[name] if name in masks else point["tensors"][name]
            assert torch.equal(param[i].detach(), expected), name
        assert (state.epoch, state.cursor.batch) == (2, 0) and state.optimizer is None


class Recorder:
    """A phase hook that records each step's learning rate and batch indices."""

    def __init__(self):
        self.steps = {}

    def before_step(self, run, step):
        size = run.phase.batch_size
        batch = run.cursor.order[:, run.cursor.batch * size:(run.cursor.batch + 1) * size].clone()
        self.steps[step] = (run.state.optimizer.param_groups[0]["lr"], batch)


def test_a_level_restarts_at_the_rewind_step_with_its_learning_rate_and_data(tmp_path):
    trunk, data = small_trunk(tmp_path)
    dense_recorder, level_recorder = Recorder(), Recorder()
    [(dense, _)] = trunk.jobs(SEEDS, 0, 8, tmp_path / "state")
    dense.phases[0] = replace(dense.phases[0], hooks=dense.phases[0].hooks + (dense_recorder,))
    train_populations([(dense, None)], data, torch.device("cpu"), RUN, trunk.paths, tmp_path / "state", "imp")
    [(level, _)] = trunk.jobs(SEEDS, 1, 8, tmp_path / "state")
    level.phases[0] = replace(level.phases[0], hooks=(level_recorder,))
    train_populations([(level, None)], data, torch.device("cpu"), RUN, trunk.paths, tmp_path / "state", "imp")
    rewind = trunk.rewind_step
    assert rewind == 8 and min(level_recorder.steps) == rewind
    lr, batch = level_recorder.steps[rewind]
    assert lr == pytest.approx(0.1 * 0.1) and lr == dense_recorder.steps[rewind][0]
    for step in range(rewind, 12):
        assert torch.equal(level_recorder.steps[step][1], dense_recorder.steps[step][1])


def test_a_killed_level_resumes_at_that_level_bit_for_bit(tmp_path, trained):
    reference, data = trained  # levels 0-2 trained without interruption
    trunk, _ = small_trunk(tmp_path / "killed")
    train(trunk, data, 1)

    class Kill:
        def after_step(self, run, step):
            if step == 9:
                run.signals.received = signal.SIGTERM

    [(level, _)] = trunk.jobs(SEEDS, 2, 8, state_dir(trunk))
    level.phases[0] = replace(level.phases[0], hooks=(Kill(),))
    with pytest.raises(Preempted):
        train_populations([(level, None)], data, torch.device("cpu"), RUN, trunk.paths, state_dir(trunk), "imp")
    jobs = trunk.jobs(SEEDS, 2, 8, state_dir(trunk))
    assert [dict(s.knobs)["level"] for job, _ in jobs for s in job.specs] == [2, 2]  # levels 0 and 1 are done
    assert jobs[0][1] is not None  # the killed level's state is found and resumed
    train(trunk, data, 2)
    for seed in SEEDS:
        got = load_member(trunk.paths, trunk_spec(trunk.cfg, 2, seed))
        want = load_member(reference.paths, trunk_spec(reference.cfg, 2, seed))
        for name in want[0]:
            assert torch.equal(got[0][name], want[0][name]), name
        assert all(torch.equal(got[1][n], want[1][n]) for n in want[1])


# ---- controls -------------------------------------------------------------------------------------------

def test_reinit_keeps_the_mask_and_draws_other_weights_and_random_masks_hit_the_density(trained):
    trunk, data = trained
    tickets = Tickets(trunk, data.num_classes)
    trunk_masks = load_member(trunk.paths, trunk_spec(trunk.cfg, 2, 0))[1]
    rewind = tickets.network(ticket_spec(trunk.cfg, 2, 0, "imp", "rewind")).state_dict()
    reinit = tickets.network(ticket_spec(trunk.cfg, 2, 0, "imp", "reinit")).state_dict()
    for source in ("imp", "random", "random_natural"):
        mask = tickets.mask(ticket_spec(trunk.cfg, 2, 0, source, "reinit"), 2)
        same = all(torch.equal(mask[n][0], trunk_masks[n]) for n in trunk.pool)
        assert same == (source == "imp"), source
        kept = sum(int(m.sum()) for m in mask.values())
        assert kept == sum(int(m.sum()) for m in trunk_masks.values())
    assert all(not torch.equal(rewind[n], reinit[n]) for n in trunk.pool)
    assert torch.equal(rewind["encoder.conv1.weight"], trunk.rewind_point(0)["tensors"]["encoder.conv1.weight"])


def test_the_corrected_random_mask_prunes_every_natural_zero_first_at_the_exact_density():
    torch.manual_seed(0)
    weights = {"a": torch.randn(1, 400), "b": torch.randn(1, 20, 30)}
    weights["a"][0, :50] = 1e-6  # natural zeros
    weights["b"][0, :3] = -2e-5
    natural = {n: w.abs() < 1e-4 for n, w in weights.items()}
    size = sum(w.numel() for w in weights.values())
    masks = natural_random_masks(weights, 0.3, 1e-4, torch.Generator().manual_seed(1))
    assert masks.member_pruned(0) == round(0.3 * size)
    assert all(bool((~masks[n][natural[n]]).all()) for n in weights)  # every natural zero is pruned
    few = natural_random_masks(weights, 0.05, 1e-4, torch.Generator().manual_seed(1))  # fewer than the zeros
    assert few.member_pruned(0) == round(0.05 * size)
    assert all(bool(natural[n][~few[n]].all()) for n in weights)  # only natural zeros are pruned


def test_natural_sparsity_counts_weights_below_each_threshold_by_hand():
    weights = {"a": torch.tensor([[0.0, 5e-5, 5e-4, 1.0]]), "b": torch.tensor([[2e-3, -3.0]])}
    fractions = natural_sparsity(weights)
    assert float(fractions[("a", "abs1e-4")][0]) == 0.5 and float(fractions[("a", "abs1e-3")][0]) == 0.75
    assert float(fractions[("all", "abs1e-3")][0]) == pytest.approx(3 / 6)
    std_b = torch.tensor([2e-3, -3.0]).std()
    assert float(fractions[("b", "std1e-2")][0]) == float((torch.tensor([2e-3, 3.0]) < 1e-2 * std_b).float().mean())


def test_adam_moments_of_pruned_weights_are_held_at_zero():
    weight = torch.nn.Parameter(torch.randn(4, 4))
    optimizer = torch.optim.Adam([weight], lr=0.1)
    weight.grad = torch.randn(4, 4)
    optimizer.step()
    masks = Masks({"w": torch.rand(4, 4) > 0.5})
    masks.hold({"w": weight}, optimizer)
    state = optimizer.state[weight]
    assert all(bool((state[k][~masks["w"]] == 0).all()) for k in ("exp_avg", "exp_avg_sq"))


def test_vgg19_is_morcos_variant_with_one_linear_layer_and_runs_on_every_image_size():
    network = build_network("vgg19", "supervised")
    convs = [m for m in network.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in network.modules() if isinstance(m, torch.nn.Linear)]
    assert len(convs) == 16 and len(linears) == 1 and linears[0].in_features == 512
    for size in (8, 28, 32):
        assert network(torch.randn(2, 3, size, size)).shape == (2, 10)


# ---- the study end to end -----------------------------------------------------------------------------------

def test_the_study_trains_every_variant_and_reports_them(tmp_path):
    flags = ["--preset", "demo", "--train_subset", "128", "--epochs", "2", "--lr_milestones", "--levels", "1",
             "--output_root", str(tmp_path), "--no-progress", "--no-curves"]
    for objective in ("supervised", "supcon"):
        tickets.main(flags + ["--objective", objective, "--stages", "imp", "retrain"])
    tickets.main(flags + ["--stages", "report"])
    report = Paths(tmp_path).study_file("digits", "tickets", "report.md").read_text()
    assert "Masks found by **supcon** pruning" in report and "| random_natural / reinit |" in report
    summary = pd.read_csv(Paths(tmp_path).study_file("digits", "tickets", "summary.csv"))
    assert len(summary) == 2 * 2 * (2 + 4)  # objectives x seeds x (level 0: two inits; level 1: four variants)
    assert set(summary.columns) >= {"objective", "mask_source", "init", "level", "density", "seed", "test_accuracy"}
    assert summary.loc[summary["level"] == 1, "density"].round(6).eq(0.8).all()
    assert (Paths(tmp_path).study_file("digits", "tickets", "tickets.png")).stat().st_size > 10_000
    natural = pd.read_csv(Paths(tmp_path).study_file("digits", "tickets", "natural_sparsity.csv"))
    assert set(natural["objective"]) == {"supervised", "supcon"} and set(natural["epoch"]) == {0, 1, 2}
    rerun = tickets.main(flags + ["--objective", "supcon", "--stages", "imp", "retrain"])
    assert rerun == []  # everything finished is skipped
    # logs name an objective as its folders do (the registry's display name), never by its key (issue 31)
    logs = " ".join(p.read_text() for p in Paths(tmp_path).log_dir("digits", "supcon", "tickets").glob("tickets_*.log"))
    assert "tickets (SupCon pruning" in logs and "(supcon pruning" not in logs


@pytest.mark.parametrize("flags, says", [
    (["--study", "tickets", "--rewind", "3x"], "--rewind 3x"),
    (["--study", "tickets", "--preset", "study"], "--preset study"),
    (["--study", "tickets", "--objectives", "nope"], "--objectives nope"),
    (["--study", "tickets", "--probe_dataset", "digits"], "--probe_dataset digits: name another dataset"),
    (["--study", "tickets", "--layerwise_depths", "0"], "--layerwise_depths 0"),
    (["--study", "tickets", "--prune_first_n_layers", "99"], "--prune_first_n_layers 99: wrn10_1 has 9 conv layers"),
    (["--study", "tickets", "--label_sampling", "some"], "--label_sampling"),
    (["--study", "tickets", "--layerwise_depths", "12"], "--layerwise_depths 12: auto, none or layer counts from 1 to 9"),
    (["--study", "tickets", "--objectives", "npid", "--optimizer", "sam"], "--optimizer sam --objective npid"),
    (["--study", "tickets", "--transfer_subset", "99999"], "--transfer_subset 99999"),
    (["--study", "tickets", "--rewind", "100ep"], "--rewind 100ep: step 2300 is past this run's last step"),
    (["--study", "nope"], "--study nope"),
])
def test_bad_study_flags_get_one_line_and_exit_2(tmp_path, capsys, flags, says):
    assert says in one_line_usage_error(capsys, reproduce.main, [*flags, "--output_root", str(tmp_path)])
    assert not any(tmp_path.iterdir())
