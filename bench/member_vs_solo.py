"""Measurement: how far a float32 population member departs from the same seed trained alone, and where from.

What it measures. (1) One forward and backward pass of K freshly initialised WRN-10-1 networks (seeds 0..K-1) on
the same random 8x8 batch, run as one population (vmap: every convolution becomes one grouped convolution) and each
alone: the largest absolute difference of each member's logits and gradients. (2) Seeds 0..K-1 trained densely on
digits for --epochs with --learning_rate, once as one population of K and once one model at a time, through the
training script itself: for each seed, whether the weights are bit-identical and the largest relative difference
(||w_pop - w_alone|| / ||w_alone||) over its tensors. Prints the device, the thread count and torch's version.

Why. The grouped convolution and a lone convolution add the same products in a different order, so the two runs
differ by float32 rounding from the first step; SGD then amplifies that difference by an amount that depends on
each model's trajectory. Whether a member comes out bit-identical is an accident of kernel choice for its shapes
and thread count, not a property to rely on (docs/reliability.md, "Determinism").

Usage:  python bench/member_vs_solo.py                # 4 seeds, 1 epoch, lr 0.05, 1 thread (about a minute)
        python bench/member_vs_solo.py --threads 2 --epochs 2
"""
import argparse
import os
import platform
import sys
import tempfile

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common.engine.population import Population  # noqa: E402
from common.models import build_network  # noqa: E402
from common.paths import Paths  # noqa: E402
from common.runtime import keep_freed_memory  # noqa: E402
from common.spec import ModelSpec  # noqa: E402
from common.studies.corti2022 import training  # noqa: E402
from common.zoo import load_member  # noqa: E402


def first_step(members: int) -> list[tuple[float, float]]:
    """-> per member (max |logit difference|, max |gradient difference|) between population and alone."""
    networks = []
    for seed in range(members):
        torch.manual_seed(seed)
        networks.append(build_network("wrn10_1", "supervised", 10))
    images = torch.randn(members, 64, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 10, (64,), generator=torch.Generator().manual_seed(1))
    together = Population(networks).train()
    logits = together(images)
    sum(F.cross_entropy(logits[k], labels) for k in range(members)).backward()
    out = []
    for k, network in enumerate(networks):
        alone = Population([network]).train()
        own = alone(images[k:k + 1])
        F.cross_entropy(own[0], labels).backward()
        grads = max((alone.params[n].grad[0] - together.params[n].grad[k]).abs().max().item() for n in alone.params)
        out.append(((own[0] - logits[k]).abs().max().item(), grads))
    return out


def trained(members: int, epochs: int, learning_rate: float) -> list[tuple[bool, float]]:
    """-> per seed (bit-identical, max relative weight difference) between a population of `members` and alone."""
    roots = {size: tempfile.mkdtemp() for size in (members, 1)}
    for size, root in roots.items():
        training.main("supervised", ["--preset", "demo", "--epochs", str(epochs), "--learning_rate",
                                     str(learning_rate), "--index_end", str(members - 1), "--pruning_percentages",
                                     "0.0", "--population_size", str(size), "--output_root", root, "--no-progress"])
    out = []
    for seed in range(members):
        spec = ModelSpec("supervised", "wrn10_1", "digits", "dense", 0.0, seed)
        pop, alone = (load_member(Paths.at(roots[size]), spec)[0] for size in (members, 1))
        floats = [n for n in alone if alone[n].is_floating_point()]
        relative = max(((pop[n] - alone[n]).norm() / alone[n].norm().clamp_min(1e-12)).item() for n in floats)
        out.append((all(torch.equal(pop[n], alone[n]) for n in alone), relative))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=4, help="seeds 0..members-1 (default: 4)")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs on digits (default: 1)")
    parser.add_argument("--learning_rate", type=float, default=0.05, help="SGD learning rate (default: 0.05)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default: 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"device: cpu ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    print("first step, population vs alone:")
    for k, (logit, grad) in enumerate(first_step(args.members)):
        print(f"  seed {k}: max |logit difference| {logit:.2e}, max |gradient difference| {grad:.2e}")
    print(f"after {args.epochs} epoch(s) on digits at lr {args.learning_rate:g}, population of {args.members} vs "
          f"alone:")
    for seed, (same, relative) in enumerate(trained(args.members, args.epochs, args.learning_rate)):
        print(f"  seed {seed}: bit-identical {same}, max relative weight difference {relative:.2e}")


if __name__ == "__main__":
    keep_freed_memory()  # as every script does (common.runtime)
    main()
