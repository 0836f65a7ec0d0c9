"""Training throughput at each recipe's batch size: populations on device-side data and augmentation vs the
authors'-style pipeline, with FLOPs counted and the fraction of the machine's measured matmul peak.

For each learning method of a preset (its architecture, image size and batch size per member; `--batch` and
`--archs` override) it times optimizer steps and reports images per second summed over the population (a SupCon
image counts once although it is seen in two views):

  baseline  the authors' pipeline shape: a torchvision DataLoader with per-image PIL transforms (their workers=0
            default, `--baseline_workers` to change), fp32, one model per process. Training 30 models this way
            takes 30 times one model's time, so its throughput for any population size is the single-model figure.
  ours K    K members trained together by common.engine on uint8 data resident on the device with batched
            augmentation (bf16 autocast on CUDA; common.engine.precision).

FLOPs per image are those of one forward + backward pass of one network, counted by torch.utils.flop_counter
(convolutions and matrix products; elementwise work is not counted), both views for SupCon. GFLOP/s = images/s x
FLOPs per image; the peak is the best of several dense 2,048 x 2,048 matmuls on the same device in the same run
(fp32 and bf16). The ratio column is ours / baseline measured in the same run. Data are random images of the
preset's shape (throughput does not depend on pixel values). Example:

  python bench/bench_training.py --preset paper --populations 1,8,30 --cuda_device 0
  python bench/bench_training.py --preset study --populations 1,5,8
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.data import DATASETS, Dataset  # noqa: E402
from common.engine.batches import Batches  # noqa: E402
from common.engine.losses import SupConLoss  # noqa: E402
from common.engine.objectives import make_objective  # noqa: E402
from common.engine import precision  # noqa: E402
from common.engine.population import Population  # noqa: E402
from common.models import build_network  # noqa: E402
from common.studies.corti2022.config import PRESET_NAMES, preset_config  # noqa: E402
from common.data.augment import supervised_augment  # noqa: E402
from common.runtime import keep_freed_memory  # noqa: E402


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


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


def flops_per_image(arch: str, method: str, size: int, device: torch.device) -> float:
    """FLOPs of one network's forward + backward per training image (both views for SupCon)."""
    net = build_network(arch, method).to(device)
    views = 1 if method == "supervised" else 2
    x = torch.randn(8 * views, 3, size, size, device=device)
    with FlopCounterMode(display=False) as counter:
        net(x, "logits" if method == "supervised" else "projection").float().sum().backward()
    return counter.get_total_flops() / 8


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


def time_baseline(arch, method, images, labels, batch, steps, device, workers) -> float:
    torch.manual_seed(0)
    net = build_network(arch, method).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loss_fn = SupConLoss(0.5, 0.07)
    loader = iter(baseline_loader(method, images, labels, batch, workers))
    done, started = 0, None
    for step in range(steps + 1):  # the first step warms up and is not timed
        if step == 1:
            sync(device)
            started = time.perf_counter()
        x, y = next(loader)
        y = y.to(device)
        if method == "supervised":
            loss = torch.nn.functional.cross_entropy(net(x.to(device)), y)
        else:
            z = net(torch.cat(x).to(device), "projection")
            loss = loss_fn(torch.stack(z.split(len(y)), dim=1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        done += len(y) if step else 0
    sync(device)
    return done / (time.perf_counter() - started)


# ---- ours -------------------------------------------------------------------------------------

def time_population(arch, method, data: Dataset, recipe, size, batch, steps, device, amp) -> float:
    torch.manual_seed(0)
    pop = Population([build_network(arch, method) for _ in range(size)], device)
    aug = supervised_augment(recipe, data.image_size) if method == "supervised" else \
        DATASETS[recipe.dataset].contrastive
    objective = make_objective(method)
    opt = torch.optim.SGD(list(pop.params.values()), lr=0.01, momentum=0.9, weight_decay=5e-4)
    generators = [torch.Generator().manual_seed(i) for i in range(size)]
    batches = Batches(data, aug, generators, device)
    autocast = precision.autocast(amp, device)
    started = None
    for step in range(steps + 1):
        if step == 1:
            sync(device)
            started = time.perf_counter()
        idx = torch.stack([torch.randint(0, len(data.train_labels), (batch,), generator=g) for g in generators])
        with autocast:
            losses, _ = objective.losses(pop, batches, idx)
        opt.zero_grad(set_to_none=True)
        losses.sum().backward()
        opt.step()
    sync(device)
    return size * batch * steps / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper", choices=PRESET_NAMES,
                        help="recipes whose architecture, image size and batch size are timed")
    parser.add_argument("--archs", default="", help="comma-separated archs (default: the preset's)")
    parser.add_argument("--methods", default="supervised,supcon")
    parser.add_argument("--populations", default="1,8", help="population sizes K")
    parser.add_argument("--batch", type=int, default=0, help="images per member per step (default: each recipe's)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (after one warm-up step)")
    parser.add_argument("--n_images", type=int, default=10000, help="random training images")
    parser.add_argument("--baseline_workers", type=int, default=0, help="DataLoader workers of the baseline")
    parser.add_argument("--cuda_device", type=int, default=0)
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                        help="bf16 autocast (default: on for CUDA, off on the CPU; common.engine.precision)")
    args = parser.parse_args()

    device = torch.device(f"cuda:{args.cuda_device}" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    peaks = {name: matmul_peak(device, dtype) for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    print(f"device: {device_name(device)}; torch {torch.__version__}; preset {args.preset}; {args.steps} timed "
          f"steps; matmul peak fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s")
    print(f"{'arch':9} {'method':10} {'batch':>5} {'K':>3} {'ours img/s':>11} {'baseline img/s':>15} {'ratio':>6} "
          f"{'GFLOP/img':>9} {'GFLOP/s':>8} {'of fp32 peak':>12}")
    for method in args.methods.split(","):
        recipe = preset_config(method, args.preset)
        size = DATASETS[recipe.dataset].image_size
        raw = random_images(args.n_images, size)
        labels = np.random.default_rng(1).integers(0, 10, size=args.n_images)
        data = Dataset(recipe.dataset, torch.from_numpy(raw).permute(0, 3, 1, 2).contiguous(),
                       torch.from_numpy(labels), torch.zeros(0, 3, size, size, dtype=torch.uint8),
                       torch.zeros(0, dtype=torch.long), (0.5,) * 3, (0.25,) * 3).to(device)
        batch = args.batch or recipe.batch_size
        for arch in (args.archs.split(",") if args.archs else [recipe.arch]):
            flops = flops_per_image(arch, method, size, device)
            base = time_baseline(arch, method, raw, labels, batch, args.steps, device, args.baseline_workers)
            for k in (int(k) for k in args.populations.split(",")):
                ours = time_population(arch, method, data, recipe, k, batch, args.steps, device, args.amp)
                achieved = ours * flops / 1e9
                print(f"{arch:9} {method:10} {batch:5d} {k:3d} {ours:11.0f} {base:15.0f} {ours / base:6.2f} "
                      f"{flops / 1e9:9.3f} {achieved:8.1f} {achieved / peaks['fp32']:11.0%}", flush=True)


if __name__ == "__main__":
    keep_freed_memory()  # as every script does (common.runtime)
    main()
