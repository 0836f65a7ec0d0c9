"""Pruning without labels in the tickets study: pretext heads stay out of the pool, NPID's memory bank travels in
the rewind point, layerwise tickets prune exactly their first N layers, linear probes and the transfer
finetunings (masks held, global GMP to the exact density), and the claims' arithmetic."""
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from common.data import load_dataset
from common.data.fashion_mnist import DEBIAN_FOLDER
from common.launch import Stage
from common.metrics.probe import linear_probe_accuracy
from common.engine.objectives import METHODS
from common.models import build_network
from common.pruning.pools import POOLS
from common.spec import ModelSpec, spec_from_filename
from common.studies.tickets import reproduce
from common.studies.tickets.claims import difference, ticket_claims
from common.studies.tickets.imp import trunk_spec
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


def test_a_claim_pairs_the_seeds_both_sides_share_and_needs_three_of_them():
    a = pd.DataFrame({"seed": [2, 0, 1], "test_accuracy": [0.9, 0.8, 0.85]})
    b = pd.DataFrame({"seed": [0, 1, 2], "test_accuracy": [0.7, 0.76, 0.77]})
    row = difference("x", a, b, 0.0, True, "")
    expected = stats.ttest_rel([0.8, 0.85, 0.9], [0.7, 0.76, 0.77]).confidence_interval()  # seed by seed
    assert row["difference"] == pytest.approx(0.32 / 3) and row["procedure"] == "paired t"
    assert (row["low"], row["high"]) == pytest.approx((expected.low, expected.high)) and row["seeds"] == "3 paired seeds"
    two = difference("x", a[a.seed < 2], b[b.seed < 2], 0.0, True, "")
    assert two["verdict"] == "TOO FEW SEEDS" and np.isnan(two["low"]) and np.isnan(two["high"])
    tickets = (("supervised", "imp", "rewind", 0.9), ("supervised", "imp", "reinit", 0.8),
               ("rotnet", "imp", "rewind", 0.7), ("rotnet", "imp", "reinit", 0.8),
               ("rotnet", "random_natural", "reinit", 0.6))
    summary = pd.DataFrame([dict(objective=o, mask_source=m, init=i, level=1, layers=0, density=0.8, seed=s,
                                 test_accuracy=acc + 0.01 * ((3 * t + s) % 4 - 1.5))  # seed-to-seed spread
                            for t, (o, m, i, acc) in enumerate(tickets) for s in range(4)])
    claims = {c["claim"]: c for c in ticket_claims(summary)}
    assert claims["winning-ticket initialisations from self-supervision are worse than from labels"][
        "difference"] == pytest.approx(-0.2, abs=0.02)
    assert claims["self-supervised masks beat random masks (both re-initialised)"]["verdict"] == "TRUE"
    assert ticket_claims(summary[summary.seed < 2])[0]["verdict"] == "TOO FEW SEEDS"  # two seeds: no verdict


def test_the_tickets_plan_runs_layerwise_tickets_after_every_objective_then_the_report(tmp_path):
    stages = reproduce.tasks(reproduce.STUDY.parse_argv(["--output_root", str(tmp_path), "--layerwise_depths", "1,3"]))
    names = [stage.name for stage in stages]
    assert names == ["imp", "retrain", "transfer", "layerwise imp", "layerwise retrain", "report"]
    layerwise = next(s for s in stages if s.name == "layerwise imp")
    assert isinstance(layerwise, Stage) and len(layerwise.tasks) == 4  # supervised and rotnet x two depths
    assert "--prune_first_n_layers 3" in layerwise.tasks[-1].command
    assert len(stages[0].tasks) == 8  # every objective, one group of seeds
