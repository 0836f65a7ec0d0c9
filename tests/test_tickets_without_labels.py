"""Pruning without labels in the tickets study: pretext heads stay out of the pool, NPID's memory bank travels in
the rewind point, layerwise tickets prune exactly their first N layers, linear probes and the transfer
finetunings (masks held, global GMP to the exact density), and the claims' arithmetic."""
import shlex
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from common.data import load_dataset
from common.data.fashion_mnist import DEBIAN_FOLDER
from common.launch import Stage
from common.metrics import verdicts
from common.metrics.probe import linear_probe_accuracy
from common.engine.objectives import METHODS
from common.models import build_network
from common.paths import Paths
from common.pruning.pools import POOLS
from common.spec import ModelSpec, spec_from_filename
from common.studies.tickets import reproduce, run as tickets
from common.studies.tickets.claims import MARGIN, Side, ticket_claim, ticket_claims, verdict_of
from common.studies.tickets.commands import retrain_command
from common.studies.tickets.config import RUN_PRESETS, TicketsRun
from common.studies.tickets.imp import trunk_spec
from common.studies.tickets.retrain import ticket_spec
from common.studies.tickets.transfer import Finetunes, probe_level
from common.zoo import load_member, load_rewind_point
from test_tickets import SEEDS, small_trunk, train, trained  # noqa: F401 - the module fixture is shared


@pytest.mark.parametrize("method", list(METHODS))
def test_pretext_heads_are_never_in_the_pool_and_names_parse_back(method):
    network = build_network("wrn10_1", method, 10, 8)
    pool = POOLS["encoder_convs"](network)
    assert pool and all(name.startswith("encoder.") for name in pool)
    spec = ModelSpec(method, "wrn10_1", "digits", "imp", 0.2, 3, study="tickets",
                     knobs=(("level", 1), ("labels", "per-class-0.1")))
    assert spec_from_filename(f"{spec.name}_encoder.safetensors") == replace(spec, knobs=(("level", "1"),
                                                                                         ("labels", "per-class-0.1")))


def test_npid_keeps_its_memory_bank_in_the_rewind_point_and_a_level_restarts_from_it(tmp_path):
    trunk, data = small_trunk(tmp_path, "npid", rewind="1ep", npid_negatives=16, projection_dim=8)
    jobs = train(trunk, data, 1)
    point = load_rewind_point(trunk.paths.rewind_point(trunk_spec(trunk.cfg, 0, 0), trunk.key))
    bank = point["objective"]["bank"]
    assert bank.shape == (len(data.train_labels), 8) and point["objective"]["z"].shape == ()
    rewound = jobs[-1].start(jobs[-1], torch.device("cpu"))
    assert torch.equal(rewound.objective_state["encoder"]["bank"][0], bank)
    # after one epoch every row has been written once: rows are unit vectors, unlike the lemniscate init
    assert torch.allclose(bank.norm(dim=1), torch.ones(len(bank)), atol=1e-5)


def test_layerwise_tickets_prune_exactly_their_first_layers_and_share_the_dense_level(trained):  # noqa: F811
    full, data = trained
    trunk, _ = small_trunk(full.paths.root, prune_first_n_layers=3)
    jobs = train(trunk, data, 1)
    assert [len(job.specs) for job in jobs] == [2]  # level 0 is the full run's, already on disk
    _, masks, _ = load_member(trunk.paths, trunk_spec(trunk.cfg, 1, 0))
    assert set(masks) == set(trunk.pool) == set(POOLS["encoder_convs"](build_network("wrn10_1", "supervised"))[:3])
    kept = sum(int(masks[n].sum()) for n in trunk.pool)
    assert kept == round(0.8 * sum(masks[n].numel() for n in trunk.pool))
    assert dict(trunk_spec(trunk.cfg, 1, 0).knobs)["layers"] == 3 and "layers" not in dict(trunk_spec(trunk.cfg, 0,
                                                                                                       0).knobs)


def test_linear_probe_separates_what_is_separable_and_vectorises_over_models():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (300,), generator=generator)
    separable = torch.nn.functional.one_hot(labels, 3).double() * 5 + 0.1 * torch.randn(300, 3, generator=generator,
                                                                                         dtype=torch.float64)
    noise = torch.randn(300, 3, generator=generator, dtype=torch.float64)
    both = torch.stack([separable, noise])
    accuracy = linear_probe_accuracy(both[:, :200], labels[:200], both[:, 200:], labels[200:], 3, steps=200)
    assert accuracy[0] == 1.0 and accuracy[1] < 0.6
    alone = linear_probe_accuracy(noise[None, :200], labels[:200], noise[None, 200:], labels[200:], 3, steps=200)
    assert alone[0] == accuracy[1]


@pytest.mark.skipif(not DEBIAN_FOLDER.is_dir(), reason="Fashion-MNIST (Debian's dataset-fashion-mnist) not installed")
def test_transfer_holds_the_pretraining_mask_and_prunes_during_transfer_to_the_exact_density(trained):  # noqa: F811
    from common.stage import train_populations
    from test_tickets import RUN

    trunk, data = trained
    fashion = load_dataset("fashion_mnist").train_subset(128)
    fashion = replace(fashion, test_images=fashion.test_images[:100], test_labels=fashion.test_labels[:100])
    trunk, _ = small_trunk(trunk.paths.root, transfer_subset=128)  # the same IMP levels (no recipe change)
    finetunes = Finetunes(trunk, fashion, "fashion_mnist")
    state_dir = trunk.paths.state_dir("fashion_mnist", "supervised", "tickets")
    jobs = finetunes.jobs(SEEDS, (2,), 8, state_dir)
    assert [job.specs[0].pruning for job, _ in jobs] == ["imp", "transfer_gmp"]
    train_populations(jobs, fashion, torch.device("cpu"), RUN, trunk.paths, state_dir, "transfer")
    pool = trunk.pool
    for seed in SEEDS:
        source_masks = load_member(trunk.paths, trunk_spec(trunk.cfg, 2, seed))[1]
        held, held_masks, _ = load_member(trunk.paths, finetunes.spec(2, seed, "imp"))
        for name in pool:
            assert torch.equal(held_masks[name], source_masks[name]) and not held[name][~source_masks[name]].any()
        pruned, pruned_masks, _ = load_member(trunk.paths, finetunes.spec(2, seed, "transfer_gmp"))
        kept = sum(int(pruned_masks[n].sum()) for n in pool)
        assert kept == round(0.64 * sum(pruned_masks[n].numel() for n in pool))
        assert all(not pruned[n][~pruned_masks[n]].any() for n in pool)
    rows = probe_level(trunk, 2, SEEDS, {"digits": data, "fashion_mnist": fashion}, 50, torch.device("cpu"))
    assert len(rows) == len(SEEDS) * 2 * 3 and all(0 <= r["accuracy"] <= 1 for r in rows)


def test_a_claim_is_the_mean_per_seed_difference_with_its_paired_t_interval_raw_and_against_level_0():
    label, rotnet = (0.90, 0.92, 0.95, 0.91), (0.85, 0.86, 0.91, 0.88)  # per seed, level 2
    dense = {"supervised": (0.97, 0.96, 0.98, 0.97), "rotnet": (0.96, 0.95, 0.96, 0.96)}  # level 0
    cells = (("supervised", 2, 0.4, label), ("rotnet", 2, 0.4, rotnet), ("supervised", 0, 1.0, dense["supervised"]),
             ("rotnet", 0, 1.0, dense["rotnet"]))
    rows = [dict(objective=o, mask_source="imp", init="rewind", level=level, layers="all", density=d, seed=s,
                 test_accuracy=acc) for o, level, d, values in cells for s, acc in enumerate(values)]
    summary = pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # rows in any order: paired by the seed column
    row = ticket_claim(summary, "x", Side("rotnet", "imp", "rewind"), Side("supervised", "imp", "rewind"), "below")
    d = np.subtract(rotnet, label)
    expected = stats.ttest_rel(rotnet, label).confidence_interval()  # seed by seed
    assert row["estimate"] == pytest.approx(d.mean()) and row["n"] == "4" and row["procedure"] == "paired t"
    assert (row["low"], row["high"]) == pytest.approx((expected.low, expected.high))
    assert row["verdict"] == "TRUE"
    relative = d - np.subtract(dense["rotnet"], dense["supervised"])
    assert row["head_start"] == pytest.approx(np.subtract(dense["rotnet"], dense["supervised"]).mean())
    assert row["relative_estimate"] == pytest.approx(relative.mean())
    two = ticket_claim(summary[summary["seed"] < 2], "x", Side("rotnet", "imp", "rewind"),
                       Side("supervised", "imp", "rewind"), "below")
    assert two["verdict"] == "TOO FEW SEEDS" and np.isnan(two["low"])  # never a zero-width interval


PRESET_SEEDS = sorted({values.get("index_end", TicketsRun().index_end) - values.get("index_start", 0) + 1
                       for values in RUN_PRESETS.values()})


@pytest.mark.parametrize("seeds", PRESET_SEEDS)
def test_paired_verdicts_say_true_in_at_most_their_nominal_share_when_there_is_no_difference(seeds):
    """At the presets' seed counts: per-seed differences with no true difference (or, for a claim of equality,
    a true difference at the margin) get TRUE in at most 2.5 % of 20,000 simulated claims (+ Monte-Carlo slack)."""
    generator = np.random.default_rng(seeds)
    noise = generator.normal(0.0, 0.01, size=(20_000, seeds))
    zero = np.zeros_like(noise)
    above = verdict_of(verdicts.paired(noise, zero, 0.0, True), "above")  # what claims.by_seed calls, batched
    within = verdict_of(verdicts.paired(noise + MARGIN, zero, MARGIN, True), "within")
    assert np.mean(above == "TRUE") < 0.03 and np.mean(within == "TRUE") < 0.03


def test_the_shared_random_control_is_every_objectives_level_0_reinit_and_random_baseline():
    rows = [dict(objective=o, mask_source=m, init=i, level=level, layers="all", density=1.0, seed=s, test_accuracy=a)
            for o, m, i, level, a in (("shared", "random", "reinit", 0, 0.9), ("shared", "random", "reinit", 1, 0.5),
                                      ("rotnet", "imp", "reinit", 1, 0.7), ("rotnet", "imp", "rewind", 1, 0.75),
                                      ("rotnet", "imp", "rewind", 0, 0.95), ("supervised", "imp", "reinit", 1, 0.72),
                                      ("supervised", "imp", "rewind", 1, 0.8),
                                      ("supervised", "imp", "rewind", 0, 0.97))
            for s in range(3)]
    summary = pd.DataFrame(rows)
    summary["test_accuracy"] += 0.001 * summary["seed"] * (summary["objective"] == "rotnet")
    claims = {c["claim"]: c for c in ticket_claims(summary)}
    beats = claims["self-supervised masks beat random masks (both re-initialised)"]
    assert beats["estimate"] == pytest.approx(0.2 + 0.001) and beats["measured"].endswith("random mask/reinit")
    match = claims["with re-initialisation, self-supervised masks match label masks"]
    assert match["head_start"] == 0.0 and match["relative_estimate"] == pytest.approx(match["estimate"])


def test_the_tickets_plan_runs_layerwise_tickets_after_every_objective_then_the_report(tmp_path):
    stages = reproduce.tasks(reproduce.STUDY.parse_argv(["--output_root", str(tmp_path), "--layerwise_depths", "1,3"]))
    names = [stage.name for stage in stages]
    assert names == ["imp", "retrain", "transfer", "layerwise imp", "layerwise retrain", "report"]
    layerwise = next(s for s in stages if s.name == "layerwise imp")
    assert isinstance(layerwise, Stage) and len(layerwise.tasks) == 4  # supervised and rotnet x two depths
    assert "--prune_first_n_layers 3" in layerwise.tasks[-1].command
    assert len(stages[0].tasks) == 3  # the demo's objectives, one group of seeds


def test_the_study_preset_splits_its_layerwise_tickets_and_their_commands_parse_back(tmp_path):
    """--preset study: layerwise tickets of the first N and the last (pool - N) conv layers (a balanced split); each
    task's printed command, and the command that makes one such ticket again, parse back to its configs."""
    plan = reproduce.STUDY.parse_argv(["--preset", "study", "--output_root", str(tmp_path)])
    layers = sorted({depth for _, depth in plan.extra["layerwise"]})
    assert layers == ["7", "last2"]  # wrn10_1: 7 + 2 conv layers of 37,808 and 38,912 weights
    tasks = [t for s in reproduce.tasks(plan) if s.name.startswith("layerwise") for t in s.tasks]
    for task in tasks:
        assert tuple(tickets.parse(shlex.split(task.command)[2:])) == tuple(task.args), task.command
    last = next(t for t in tasks if "last 2" in t.label).args[0]
    spec = ticket_spec(last, 3, 1, "imp", "rewind")
    cfg, run = tickets.parse(shlex.split(retrain_command(spec, last.recipe(pruned=True), Paths(tmp_path)))[2:])
    assert (cfg.prune_last_n_layers, cfg.prune_first_n_layers, run.levels) == (2, 0, 3)
