"""Training and inference throughput at each recipe's batch size: the engine's populations against plain PyTorch
eager and against the authors'-style pipeline, measured in the same run, with FLOPs counted and the fraction of the
machine's measured matmul peak.

For each learning method of a preset (its architecture, image size and batch size per member; `--batch` and
`--archs` override) it times optimizer steps and reports images per second summed over the population (a SupCon
image counts once although it is seen in two views):

  ours K        K members trained together by common.engine on uint8 data resident on the device with batched
                augmentation, with the engine's defaults for this device (bf16 autocast, channels_last, compile,
                member execution: printed in the header; the JobConfig flags --amp, --channels_last, --compile and
                --population_execution change them, as they do for training).
  plain eager   the strong baseline: one network in plain PyTorch eager fp32, the same batch, tensors already
                normalised in memory, no augmentation and no DataLoader (`ratio vs plain eager`).
  authors'      the authors' pipeline shape: a torchvision DataLoader with per-image PIL transforms (their workers=0
                default, `--baseline_workers` to change), fp32, one model per process (`ratio vs authors'`).
  Training K models one at a time takes K times one model's time, so both baselines' throughput for any population
  size is their single-model figure. Ours and plain eager are timed in turn `--rounds` times (3) and each
  figure is the median, so that a shared machine's load falls on both alike; the authors' pipeline is timed once.

Then inference (`--inference`, on by default): evaluation of the test-set-sized image set by common.engine's
`evaluate` (its batch of 1,024, the engine's defaults) against plain eager fp32 (`net.eval()`, no_grad, the same
batches), images per second summed over the population, in turn as above.

FLOPs per image are those of one forward + backward pass of one network, counted by torch.utils.flop_counter
(convolutions and matrix products; elementwise work is not counted), both views for SupCon. GFLOP/s = images/s x
FLOPs per image; the peak is the best of several dense 2,048 x 2,048 matmuls on the same device in the same run
(fp32 and bf16). Data are random images of the preset's shape (throughput does not depend on pixel values), as many
as the timed steps read. A row whose activations would not fit the device's free memory is skipped with one line.
Example:

  python bench/bench_training.py --preset study --populations 1,5
  python bench/bench_training.py --preset paper --populations 1,8,30 --cuda_device 0
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.cli import add_config_args, given_values  # noqa: E402
from common.config import JobConfig  # noqa: E402
from common.data import DATASETS, Dataset  # noqa: E402
from common.data.augment import supervised_augment  # noqa: E402
from common.engine.batches import Batches  # noqa: E402
from common.engine.inference import evaluate  # noqa: E402
from common.engine.loop import configure_population, execution_summary  # noqa: E402
from common.engine.losses import SupConLoss  # noqa: E402
from common.engine.objectives import make_objective  # noqa: E402
from common.engine.population import Population  # noqa: E402
from common.engine.precision import autocast  # noqa: E402
from common.models import build_network  # noqa: E402
from common.runtime import keep_freed_memory  # noqa: E402
from common.studies.corti2022.config import PRESET_NAMES, preset_config  # noqa: E402

EXECUTION_FIELDS = ("amp", "channels_last", "compile", "population_execution")
MEMORY_MARGIN = 2.0  # activations x this must fit: the allocator's slack, gradients, the optimizer's buffers


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {cpu_model()} ({torch.get_num_threads()} threads)"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of the best of `repeats` dense n x n matmuls (after one warm-up)."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for step in range(repeats + 1):
        sync(device)
        started = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - started) if step else best
    return 2 * n ** 3 / best / 1e9


def views(method: str) -> int:
    return 1 if method == "supervised" else 2


def flops_per_image(arch: str, method: str, size: int, device: torch.device) -> float:
    """FLOPs of one network's forward + backward per training image (both views for SupCon)."""
    net = build_network(arch, method).to(device)
    x = torch.randn(8 * views(method), 3, size, size, device=device)
    with FlopCounterMode(display=False) as counter:
        net(x, "logits" if method == "supervised" else "projection").float().sum().backward()
    return counter.get_total_flops() / 8


# ---- memory: a row that cannot fit is skipped, not killed ---------------------------------------------

def activation_bytes_per_image(arch: str, method: str, size: int) -> float:
    """Bytes autograd keeps per training image of one network (fp32, both views for SupCon), counted on 4 images."""
    net = build_network(arch, method)
    saved = []

    def keep(t):
        saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
        net(torch.randn(4 * views(method), 3, size, size), "logits" if method == "supervised" else "projection")
    return sum(saved) / 4


def free_bytes(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return float("inf")


def too_big(arch, method, size, images_per_step: int, device) -> str:
    """'' when a step over `images_per_step` training images fits the device's free memory, else why not."""
    need = activation_bytes_per_image(arch, method, size) * images_per_step * MEMORY_MARGIN
    free = free_bytes(device)
    return "" if need <= free else f"needs about {need / 2**30:.1f} GiB for activations, {free / 2**30:.1f} GiB free"


# ---- the authors'-style baseline ----------------------------------------------------------------

class PilDataset(torch.utils.data.Dataset):
    """Like torchvision's CIFAR10: a PIL image per item through a per-image transform."""

    def __init__(self, images, labels, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        from PIL import Image  # only for the DataLoader baseline
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def baseline_loader(method, images, labels, batch, workers):
    from torchvision import transforms as T  # only for the DataLoader baseline

    size = images.shape[1]
    normalize = T.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    if method == "supervised":
        transform = T.Compose([T.RandomCrop(size, padding=size // 8), T.RandomVerticalFlip(), T.RandomHorizontalFlip(),
                               T.ToTensor(), normalize])
    else:
        view = T.Compose([T.RandomResizedCrop(size, scale=(0.2, 1.0)), T.RandomHorizontalFlip(),
                          T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(0.2),
                          T.ToTensor(), normalize])
        transform = lambda img: (view(img), view(img))  # noqa: E731  (the authors' TwoCropTransform)
    return torch.utils.data.DataLoader(PilDataset(images, labels, transform), batch_size=batch, shuffle=True,
                                       num_workers=workers, drop_last=True)


def loss_of(net, method, x, y, loss_fn):
    if method == "supervised":
        return F.cross_entropy(net(x), y)
    z = net(x, "projection")
    return loss_fn(torch.stack(z.split(len(y)), dim=1), y)


def timed_steps(step, steps: int, device) -> float:
    """Seconds of `steps` calls of step() after one warm-up call."""
    step()
    sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return time.perf_counter() - started


def time_authors(arch, method, images, labels, batch, steps, device, workers) -> float:
    torch.manual_seed(0)
    net = build_network(arch, method).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loss_fn = SupConLoss(0.5, 0.07)
    loader = iter(baseline_loader(method, images, labels, batch, workers))

    def step():
        x, y = next(loader)
        x = torch.cat(x) if method != "supervised" else x
        loss = loss_of(net, method, x.to(device), y.to(device), loss_fn)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return batch * steps / timed_steps(step, steps, device)


# ---- plain PyTorch eager fp32: the strong baseline ----------------------------------------------

def time_plain(arch, method, size, batch, steps, device) -> float:
    torch.manual_seed(0)
    net = build_network(arch, method).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loss_fn = SupConLoss(0.5, 0.07)
    x = torch.randn(batch * views(method), 3, size, size, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def step():
        loss = loss_of(net, method, x, y, loss_fn)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return batch * steps / timed_steps(step, steps, device)


@torch.no_grad()
def time_plain_inference(arch, images: torch.Tensor, normalize, device, batch: int = 1024) -> float:
    net = build_network(arch, "supervised").to(device).eval()

    def run():
        for start in range(0, len(images), batch):
            net(normalize(images[start:start + batch]))
    return len(images) / timed_steps(run, 1, device)


# ---- ours -------------------------------------------------------------------------------------

def time_population(arch, method, data: Dataset, recipe, size, batch, steps, device, run: JobConfig) -> float:
    torch.manual_seed(0)
    pop = configure_population(Population([build_network(arch, method) for _ in range(size)], device), run, device)
    aug = supervised_augment(recipe, data.image_size) if method == "supervised" else \
        DATASETS[recipe.dataset].contrastive
    objective = make_objective(method)
    opt = torch.optim.SGD(list(pop.params.values()), lr=0.01, momentum=0.9, weight_decay=5e-4)
    generators = [torch.Generator().manual_seed(i) for i in range(size)]
    batches = Batches(data, aug, generators, device)
    context = autocast(run.amp, device)

    def step():
        idx = torch.stack([torch.randint(0, len(data.train_labels), (batch,), generator=g) for g in generators])
        with context:
            losses, _ = objective.losses(pop, batches, idx)
        opt.zero_grad(set_to_none=True)
        losses.sum().backward()
        opt.step()
    return size * batch * steps / timed_steps(step, steps, device)


def time_evaluation(arch, data: Dataset, size, device, run: JobConfig, batch: int = 1024) -> float:
    torch.manual_seed(0)
    pop = configure_population(Population([build_network(arch, "supervised") for _ in range(size)], device), run,
                               device)
    context = autocast(run.amp, device)

    def run_once():
        with context:
            evaluate(pop, data.test_images, data.test_labels, data.normalize, batch)
    return size * len(data.test_labels) / timed_steps(run_once, 1, device)


# ---- the table ------------------------------------------------------------------------------------

def random_dataset(name: str, n_train: int, n_test: int, device) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """A Dataset of random images shaped like `name`'s, and the raw training arrays the PIL baseline reads."""
    size = DATASETS[name].image_size
    raw = random_images(n_train, size)
    labels = np.random.default_rng(1).integers(0, 10, size=n_train)
    test = torch.from_numpy(random_images(n_test, size, seed=2)).permute(0, 3, 1, 2).contiguous()
    data = Dataset(name, torch.from_numpy(raw).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels),
                   test, torch.from_numpy(np.random.default_rng(3).integers(0, 10, size=n_test)),
                   (0.5,) * 3, (0.25,) * 3).to(device)
    return data, raw, labels


def training_rows(args, run: JobConfig, device, peaks) -> None:
    print(f"{'arch':9} {'method':10} {'batch':>5} {'K':>3} {'ours img/s':>10} {'plain eager':>11} "
          f"{'ratio vs plain eager':>20} {'authors img/s':>13} {'ratio vs authors':>16} {'GFLOP/img':>9} "
          f"{'GFLOP/s':>8} {'of fp32 peak':>12}")
    for method in args.methods.split(","):
        recipe = preset_config(method, args.preset)
        size = DATASETS[recipe.dataset].image_size
        batch = args.batch or recipe.batch_size
        data, raw, labels = random_dataset(recipe.dataset, max(args.n_images, (args.steps + 1) * batch), 0, device)
        for arch in (args.archs.split(",") if args.archs else [recipe.arch]):
            why = too_big(arch, method, size, batch * views(method), device)
            if why:
                print(f"{arch:9} {method:10} {batch:5d}   skipped: one model's step {why}", flush=True)
                continue
            flops = flops_per_image(arch, method, size, device)
            authors = time_authors(arch, method, raw, labels, batch, args.steps, device, args.baseline_workers)
            for k in (int(k) for k in args.populations.split(",")):
                why = too_big(arch, method, size, k * batch * views(method), device)
                if why:
                    print(f"{arch:9} {method:10} {batch:5d} {k:3d} skipped: {why}", flush=True)
                    continue
                plain, ours = alternating(args.rounds, lambda: time_plain(arch, method, size, batch, args.steps, device),
                                          lambda: time_population(arch, method, data, recipe, k, batch, args.steps,
                                                                  device, run))
                achieved = ours * flops / 1e9
                print(f"{arch:9} {method:10} {batch:5d} {k:3d} {ours:10.0f} {plain:11.0f} {ours / plain:20.2f} "
                      f"{authors:13.0f} {ours / authors:16.2f} {flops / 1e9:9.3f} {achieved:8.1f} "
                      f"{achieved / peaks['fp32']:11.0%}", flush=True)


def alternating(rounds: int, baseline, candidate) -> tuple[float, float]:
    """Medians of `rounds` timings of baseline() and candidate(), taken in turn so that a shared machine's load
    falls on both alike."""
    pairs = [(baseline(), candidate()) for _ in range(rounds)]
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def inference_rows(args, run: JobConfig, device) -> None:
    recipe = preset_config("supervised", args.preset)
    data, _, _ = random_dataset(recipe.dataset, 0, args.n_test, device)
    print(f"\nevaluation of {args.n_test:,} images at batch 1,024:")
    print(f"{'arch':9} {'K':>3} {'ours img/s':>10} {'plain eager':>11} {'ratio vs plain eager':>20}")
    for arch in (args.archs.split(",") if args.archs else [recipe.arch]):
        for k in (int(k) for k in args.populations.split(",")):
            plain, ours = alternating(args.rounds,
                                      lambda: time_plain_inference(arch, data.test_images, data.normalize, device),
                                      lambda: time_evaluation(arch, data, k, device, run))
            print(f"{arch:9} {k:3d} {ours:10.0f} {plain:11.0f} {ours / plain:20.2f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper", choices=PRESET_NAMES,
                        help="recipes whose architecture, image size and batch size are timed")
    parser.add_argument("--archs", default="", help="comma-separated archs (default: the preset's)")
    parser.add_argument("--methods", default="supervised,supcon")
    parser.add_argument("--populations", default="1,8", help="population sizes K")
    parser.add_argument("--batch", type=int, default=0, help="images per member per step (default: each recipe's)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (after one warm-up step)")
    parser.add_argument("--rounds", type=int, default=3, help="timings of ours and of plain eager, taken in turn; "
                                                              "each figure is their median")
    parser.add_argument("--n_images", type=int, default=0, help="random training images (default: as many as the "
                                                                "timed steps read)")
    parser.add_argument("--n_test", type=int, default=10000, help="images of the inference rows")
    parser.add_argument("--inference", action=argparse.BooleanOptionalAction, default=True,
                        help="time evaluation too")
    parser.add_argument("--baseline_workers", type=int, default=0, help="DataLoader workers of the authors' baseline")
    parser.add_argument("--cuda_device", type=int, default=0)
    add_config_args(parser, JobConfig, only=EXECUTION_FIELDS)
    args = parser.parse_args()
    run = replace(JobConfig(), **given_values(args, JobConfig))

    device = torch.device(f"cuda:{args.cuda_device}" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    peaks = {name: matmul_peak(device, dtype) for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    print(f"device: {device_name(device)}; torch {torch.__version__}; preset {args.preset}; {args.steps} timed "
          f"steps; matmul peak fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s")
    print(f"ours: {execution_summary(run, device)}")
    training_rows(args, run, device, peaks)
    if args.inference:
        inference_rows(args, run, device)


if __name__ == "__main__":
    keep_freed_memory()  # as every script does (common.runtime)
    main()
