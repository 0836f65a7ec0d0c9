"""A population member follows exactly the trajectory of the same seed trained alone (BatchNorm and GMP included)."""
from dataclasses import replace

import pytest
import torch

from common.studies.corti2022.config import RunConfig, preset_config
from common.data.digits import load_digits
from common.models import build_network
from common.paths import Paths
from common.spec import ModelSpec
from common.studies.corti2022.training import build_phases
from common.engine.phase import Job
from common.stage import train_populations
from common.zoo import load_member


@pytest.fixture(scope="module")
def tiny_digits():
    data = load_digits()  # 96 images keep the float64 runs to seconds
    return replace(data, train_images=data.train_images[:96], train_labels=data.train_labels[:96],
                   test_images=data.test_images[:32], test_labels=data.test_labels[:32])


def train(tmp_path, data, method, members, gmp, execution="auto", **switches):
    """Train `members` [(seed, sparsity)] as one population for a few steps with a GMP window inside the run."""
    # a gentle learning rate: at lr 0.1 on tiny batches training is chaotic here (a 1e-7 change of the initial
    # weights grows to 0.2 in 12 steps), which would hide real differences behind rounding noise
    cfg = preset_config(method, "demo", epochs=3, batch_size=32, learning_rate=0.01, learning_rate_head=0.01,
                        head_epochs=2, batch_size_head=32,
                        head_milestones=(1,), begin_step=gmp[0], end_step=gmp[1], frequency=gmp[2],
                        begin_step_head=1, end_step_head=5, frequency_head=2)
    template = build_network(cfg.arch, method, 10, cfg.projection_dim)
    phases = build_phases(cfg, len(data.train_labels), template, data.image_size)
    specs = [ModelSpec(method, cfg.arch, "digits", "gmp_custom", s, seed) for seed, s in members]

    def networks():
        out = []
        for spec in specs:
            torch.manual_seed(spec.seed)
            out.append(build_network(cfg.arch, method, 10, cfg.projection_dim))
        return out

    job = Job(specs=specs, phases=phases, make_networks=networks, config=cfg.to_dict(),
              recipes=[cfg.recipe(s.sparsity) for s in specs], final_sparsity=[s for _, s in members])
    paths = Paths(tmp_path)
    run = RunConfig(progress=False, eval_every=100, population_execution=execution, **switches)
    train_populations([(job, None)], data, torch.device("cpu"), run, paths, paths.state_dir("digits", method), "test")
    return {spec.seed: load_member(paths, spec) for spec in specs}


@pytest.fixture
def float64():
    """Grouped and plain convolutions round differently; in float64 that noise stays far below the tolerance."""
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("method", ["supervised", "supcon"])
def test_member_equals_the_same_seed_trained_alone(tmp_path, tiny_digits, method, float64):
    members = [(0, 0.0), (1, 0.5), (2, 0.8)]
    gmp = (1, 7, 2)  # 9 steps in all: pruning events at steps 1, 3, 5, 7
    together = train(tmp_path / "together", tiny_digits, method, members, gmp)
    for seed, sparsity in members:
        alone = train(tmp_path / f"alone{seed}", tiny_digits, method, [(seed, sparsity)], gmp)[seed]
        state_p, masks_p, meta_p = together[seed]
        state_a, masks_a, meta_a = alone
        assert masks_p.keys() == masks_a.keys()
        for name in masks_a:
            assert torch.equal(masks_p[name], masks_a[name]), name
        for name in state_a:
            assert torch.allclose(state_p[name].float(), state_a[name].float(), rtol=1e-6, atol=1e-8), name
        assert meta_p["sparsity"] == meta_a["sparsity"]
        if sparsity:
            assert set(meta_a["layer_sparsity"].values()) != {0.0}


@pytest.mark.parametrize("method", ["supervised", "supcon"])
@pytest.mark.parametrize("switches", [dict(amp=False, channels_last=False), dict(amp=True, channels_last=True)],
                         ids=["fp32", "bf16-channels_last"])
def test_members_run_one_after_another_equal_the_same_seed_alone_bit_for_bit(tmp_path, tiny_digits, method,
                                                                             switches):
    """The CPU's default for large per-member work: no grouped convolution, so no rounding apart, in float32 and
    under bf16 autocast with channels_last (the default on a CPU with native bf16)."""
    members, gmp = [(0, 0.0), (1, 0.5)], (1, 7, 2)
    together = train(tmp_path / "together", tiny_digits, method, members, gmp, execution="sequential", **switches)
    for seed, sparsity in members:
        state_a, masks_a, _ = train(tmp_path / f"alone{seed}", tiny_digits, method, [(seed, sparsity)], gmp,
                                    **switches)[seed]
        state_p, masks_p, _ = together[seed]
        assert all(torch.equal(masks_p[name], masks_a[name]) for name in masks_a)
        assert all(torch.equal(state_p[name], state_a[name]) for name in state_a), seed
