"""The CPU's speed paths give what plain fp32 eager gives, within stated tolerances: BatchNorm folded for inference,
channels_last members, compiled members shared across populations; bf16 autocast defaults on exactly where the
processor computes bf16 natively; the stage profile counts every second once; the bench runs a preset and skips a row
that does not fit in memory with one line."""
import sys
from pathlib import Path

import pytest
import torch

from common.data.augment import SupervisedAugment
from common.data.digits import load_digits
from common.engine import population as population_module
from common.engine import precision
from common.engine.batches import Batches
from common.engine.folding import conv_bn_pairs, folded
from common.engine.inference import evaluate, predict
from common.engine.objectives import make_objective
from common.engine.population import Population
from common.engine.timing import Timings
from common.models import build_network

CPU = torch.device("cpu")


def trained_looking(arch: str, method: str, members: int = 2) -> list:
    """Networks whose BatchNorms hold statistics and affine weights far from their initial values."""
    torch.manual_seed(0)
    networks = [build_network(arch, method) for _ in range(members)]
    for network in networks:
        for m in network.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.3, 3.0)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.normal_(0, 0.2)
    return networks


@pytest.mark.parametrize("arch, folds", [("wrn10_1", 3), ("preresnet20", 9), ("resnet18", 20), ("vgg19", 0)])
def test_folded_batchnorm_gives_the_unfolded_outputs_in_every_mode(arch, folds):
    pop = Population(trained_looking(arch, "supcon")).eval()
    names = set(pop.params) | set(pop.buffers)
    x = torch.randn(8, 3, 16, 16)
    for mode in ("logits", "features", "projection", "hidden"):
        assert len(conv_bn_pairs(pop.template, mode)) == folds  # VGG's pooling rule defeats torch.fx: unfolded
        want, got = pop(x, mode, shared_input=True), folded(pop, mode)(x, mode, shared_input=True)
        pairs = list(zip([want[0], *want[1]], [got[0], *got[1]])) if mode == "hidden" else [(want, got)]
        for a, b in pairs:  # float32 rounding of W * s against (conv(W) - mean) * s: 1e-6 relative measured
            assert (a - b).abs().max() <= 1e-5 * a.abs().max(), mode
    assert set(pop.params) | set(pop.buffers) == names  # the population itself is left as it was


def test_evaluation_and_predictions_run_folded_and_agree_with_the_plain_networks():
    networks = trained_looking("wrn10_1", "supervised")
    pop = Population(networks)
    digits = load_digits()
    images, labels = digits.test_images[:300], digits.test_labels[:300]
    loss, accuracy = evaluate(pop, images, labels, digits.normalize, batch=128)
    logits = predict(pop, images, digits.normalize, batch=128)
    with torch.no_grad():
        plain = torch.stack([net.eval()(digits.normalize(images)) for net in networks])
    assert (logits - plain).abs().max() <= 1e-5 * plain.abs().max()
    assert torch.equal(accuracy, (plain.argmax(-1) == labels).float().mean(1))
    plain_loss = torch.nn.functional.cross_entropy(plain.flatten(0, 1), labels.repeat(2), reduction="none")
    assert torch.allclose(loss, plain_loss.view(2, -1).mean(1), rtol=1e-5)


def step_gradients(pop: Population, data) -> tuple[torch.Tensor, list[torch.Tensor]]:
    batches = Batches(data, SupervisedAugment(padding=1), [torch.Generator().manual_seed(s) for s in (0, 1)], CPU)
    losses, _ = make_objective("supervised").losses(pop, batches, torch.stack([torch.arange(48), torch.arange(48, 96)]))
    losses.sum().backward()
    return losses.detach(), [p.grad.clone() for p in pop.params.values()]


def test_channels_last_members_take_the_contiguous_members_step():
    """float32: the layouts sum in other orders, so the gradients agree to rounding (1e-5 relative)."""
    digits = load_digits()
    contiguous = Population(trained_looking("wrn10_1", "supervised"), execution="sequential")
    contiguous.configure(channels_last=False)
    channels_last = Population(trained_looking("wrn10_1", "supervised"), execution="sequential")
    assert channels_last.channels_last is None  # the device's default: on for the CPU, off for CUDA
    assert precision.channels_last_enabled(None, CPU) and not precision.channels_last_enabled(None,
                                                                                            torch.device("cuda"))
    want_losses, want = step_gradients(contiguous, digits)
    got_losses, got = step_gradients(channels_last, digits)
    assert torch.allclose(got_losses, want_losses, rtol=1e-5)
    for a, b in zip(got, want):
        assert (a - b).norm() <= 1e-5 * b.norm()


def test_compiled_members_match_eager_and_one_compilation_serves_every_population(monkeypatch):
    """The CPU's layout (members one after another) compiled by inductor: one training step's losses and gradients
    equal eager's, in float64 (as the vmapped test in test_precision: float32's fused BatchNorm backward rounds
    differently). A second population of the same architecture reuses the compiled forward."""
    monkeypatch.setattr(population_module, "_COMPILED_MEMBERS", {})
    digits = load_digits()
    torch.set_default_dtype(torch.float64)
    try:
        eager = Population(trained_looking("wrn10_1", "supervised"), execution="sequential")
        compiled = Population(trained_looking("wrn10_1", "supervised"), execution="sequential").configure(
            compile=True)
        want_losses, want = step_gradients(eager, digits)
        got_losses, got = step_gradients(compiled, digits)
        compiled_once = dict(population_module._COMPILED_MEMBERS)
        other = Population(trained_looking("wrn10_1", "supervised"), execution="sequential").configure(compile=True)
        step_gradients(other, digits)
    finally:
        torch.set_default_dtype(torch.float32)
    assert torch.allclose(got_losses, want_losses, rtol=1e-10)
    for a, b in zip(got, want):
        assert (a - b).norm() <= 1e-8 * b.norm()
    assert len(compiled_once) == 1 and population_module._COMPILED_MEMBERS == compiled_once


@pytest.mark.parametrize("flags, native", [({"avx512f", "avx512_bf16"}, True), ({"amx_bf16", "amx_tile"}, True),
                                           ({"avx512f", "avx512bw"}, False), (set(), False)])
def test_bf16_autocast_defaults_on_exactly_where_the_cpu_computes_bf16_natively(monkeypatch, flags, native):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))
    assert precision.amp_enabled(None, CPU) is native
    assert precision.amp_enabled(True, CPU) and not precision.amp_enabled(False, CPU)
    assert precision.amp_enabled(None, torch.device("cuda"))
    reason = precision.amp_reason(None, CPU)
    assert reason.startswith(f"bf16 autocast {'on' if native else 'off'}")
    assert ("avx512_bf16" in reason or "amx_bf16" in reason) == native


def test_the_cpu_flags_are_read_from_the_processor():
    flags = precision.cpu_flags()
    assert Path("/proc/cpuinfo").is_file() <= bool(flags)  # Linux: read; elsewhere empty, so bf16 stays off


def test_timings_count_each_second_in_the_innermost_region_only(monkeypatch):
    clock = iter([0.0, 1.0, 3.0, 4.0, 10.0, 12.0])  # outer opens, inner 1..3, inner 4..10, outer closes at 12
    timings = Timings()
    monkeypatch.setattr(timings, "_now", lambda: next(clock))
    with timings.region("outer"):
        with timings.region("inner"):
            pass
        with timings.region("inner"):
            pass
    assert timings.seconds == {"inner": 8.0, "outer": 4.0} and timings.calls == {"inner": 2, "outer": 1}
    before = timings.snapshot()
    timings.seconds["inner"] += 1.5
    assert timings.since(before) == {"inner": 1.5}


def test_the_bench_runs_a_preset_and_skips_a_row_that_does_not_fit_with_one_line(monkeypatch, capsys):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    import bench_training

    free = 1.5 * bench_training.MEMORY_MARGIN * bench_training.activation_bytes_per_image("wrn10_1", "supervised", 8)
    monkeypatch.setattr(bench_training, "free_bytes", lambda device: free * 64)  # K = 1 of batch 64 fits, K = 2 not
    monkeypatch.setattr(sys, "argv", ["bench_training.py", "--preset", "demo", "--methods", "supervised",
                                      "--populations", "1,2", "--steps", "1", "--n_test", "64"])
    bench_training.main()
    out = capsys.readouterr().out.splitlines()
    rows = [line for line in out if line.startswith("wrn10_1")]
    assert len(rows) == 4  # K = 1 timed, K = 2 skipped, evaluation K = 1 and 2
    assert "skipped: needs about" in rows[1] and float(rows[0].split()[4]) > 0
    assert any("ratio vs plain eager" in line for line in out)
