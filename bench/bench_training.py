"""Training throughput: populations on device-side data and augmentation vs the authors'-style pipeline.

For each architecture and learning method it times optimizer steps and reports images per second summed over
the population (a SupCon image counts once although it is seen in two views):

  baseline  the authors' pipeline shape: a torchvision DataLoader with per-image PIL transforms (their workers=0
            default, `--baseline_workers` to change), fp32, one model per process. Training 30 models this way
            takes 30 times one model's time, so its throughput for any population size is the single-model figure.
  ours K    K members trained together by common.engine on uint8 data resident on the device with batched
            augmentation (bf16 autocast on CUDA).

The ratio column is ours / baseline measured in the same run on the same device. Data are random CIFAR-shaped
images (throughput does not depend on pixel values). Example:

  python bench/bench_training.py --archs wrn16_2 --populations 1,8,30 --methods supervised,supcon --cuda_device 0
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.data import Dataset  # noqa: E402
from common.data.augment import ContrastiveAugment, SupervisedAugment  # noqa: E402
from common.data.cifar10 import CIFAR_MEAN, CIFAR_STD  # noqa: E402
from common.engine.batches import Batches  # noqa: E402
from common.engine.losses import SupConLoss  # noqa: E402
from common.engine.objectives import make_objective  # noqa: E402
from common.engine.population import Population  # noqa: E402
from common.models import build_network  # noqa: E402
from common.runtime import keep_freed_memory  # noqa: E402


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_cifar(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


# ---- the authors'-style baseline ----------------------------------------------------------------

class PilDataset(torch.utils.data.Dataset):
    """Like torchvision's CIFAR10: a PIL image per item through a per-image transform."""

    def __init__(self, images, labels, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        from PIL import Image
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def baseline_loader(method, images, labels, batch, workers):
    from torchvision import transforms as T

    normalize = T.Normalize(CIFAR_MEAN, CIFAR_STD)
    if method == "supervised":
        transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomVerticalFlip(), T.RandomHorizontalFlip(),
                               T.ToTensor(), normalize])
    else:
        view = T.Compose([T.RandomResizedCrop(32, scale=(0.2, 1.0)), T.RandomHorizontalFlip(),
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

def time_population(arch, method, data: Dataset, size, batch, steps, device, amp) -> float:
    torch.manual_seed(0)
    pop = Population([build_network(arch, method) for _ in range(size)], device)
    aug = SupervisedAugment() if method == "supervised" else ContrastiveAugment()
    objective = make_objective("ce" if method == "supervised" else "supcon")
    opt = torch.optim.SGD(list(pop.params.values()), lr=0.01, momentum=0.9, weight_decay=5e-4)
    generators = [torch.Generator().manual_seed(i) for i in range(size)]
    batches = Batches(data, aug, generators, device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda" and amp)
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
    parser.add_argument("--archs", default="wrn16_2", help="comma-separated archs")
    parser.add_argument("--methods", default="supervised,supcon")
    parser.add_argument("--populations", default="1,8,30", help="population sizes K")
    parser.add_argument("--batch", type=int, default=128, help="images per member per step (both methods)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (after one warm-up step)")
    parser.add_argument("--n_images", type=int, default=10000, help="random CIFAR-shaped training images")
    parser.add_argument("--baseline_workers", type=int, default=0, help="DataLoader workers of the baseline")
    parser.add_argument("--cuda_device", type=int, default=0)
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True, help="bf16 autocast on CUDA")
    args = parser.parse_args()

    device = torch.device(f"cuda:{args.cuda_device}" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    raw = random_cifar(args.n_images)
    labels = np.random.default_rng(1).integers(0, 10, size=args.n_images)
    data = Dataset("cifar10", torch.from_numpy(raw).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels),
                   torch.zeros(0, 3, 32, 32, dtype=torch.uint8), torch.zeros(0, dtype=torch.long),
                   CIFAR_MEAN, CIFAR_STD).to(device)
    print(f"device: {device_name(device)}; torch {torch.__version__}; batch {args.batch}/member; "
          f"{args.steps} timed steps")
    print(f"{'arch':9} {'method':10} {'K':>3} {'ours img/s':>11} {'baseline img/s':>15} {'ratio':>7}")
    for arch in args.archs.split(","):
        for method in args.methods.split(","):
            base = time_baseline(arch, method, raw, labels, args.batch, args.steps, device, args.baseline_workers)
            for size in (int(k) for k in args.populations.split(",")):
                ours = time_population(arch, method, data, size, args.batch, args.steps, device, args.amp)
                print(f"{arch:9} {method:10} {size:3d} {ours:11.0f} {base:15.0f} {ours / base:7.2f}", flush=True)


if __name__ == "__main__":
    keep_freed_memory()  # as every script does (common.runtime)
    main()
