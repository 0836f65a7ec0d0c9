"""Each CPU speed switch measured side by side in one run: training steps and evaluation of a preset's recipes with
bf16 autocast, channels_last and torch.compile on and off (and member execution, BatchNorm folding), rounds
alternating between the variants so that a shared machine's load falls on all of them alike.

Every variant is the engine's own step (common.engine: population, batched augmentation, objective, SGD) at the
recipe's batch size, timed over --steps steps after one warm-up step (whose time, compilation included, is printed
as `first s`); evaluation is common.engine.inference.evaluate over --n_test images. The table gives the median
images per second of the rounds and the ratio to the first variant (plain fp32 eager, the engine's old defaults).

  python bench/bench_switches.py --preset study --populations 1,5
  python bench/bench_switches.py --variants fp32,bf16,bf16+cl --rounds 5
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_training import (device_name, random_dataset, time_evaluation, time_plain,  # noqa: E402
                            time_plain_inference, time_population)
from common.config import JobConfig  # noqa: E402
from common.data import DATASETS  # noqa: E402
from common.engine import folding  # noqa: E402
from common.runtime import keep_freed_memory  # noqa: E402
from common.studies.corti2022.config import PRESET_NAMES, preset_config  # noqa: E402

SWITCHES = {  # a variant is '+'-joined switches; 'fp32' alone is the baseline
    "fp32": {},
    "bf16": dict(amp=True),
    "cl": dict(channels_last=True),
    "compile": dict(compile=True),
    "vmap": dict(population_execution="vmap"),
    "seq": dict(population_execution="sequential"),
}
OFF = dict(amp=False, channels_last=False, compile=False)


def job_config(variant: str) -> tuple[JobConfig, bool, int]:
    """(the JobConfig of a variant, whether BatchNorm folding stays on ('nofold' switches it off), the evaluation
    batch ('b256': 256; default 1,024))."""
    settings, batch = dict(OFF), 1024
    parts = variant.split("+")
    for part in parts:
        if part.startswith("b") and part[1:].isdigit():
            batch = int(part[1:])
        elif part not in SWITCHES and part != "nofold":
            raise SystemExit(f"--variants {variant}: unknown switch {part!r} (choose from {', '.join(SWITCHES)}, "
                             f"nofold, b<evaluation batch>)")
        settings.update(SWITCHES.get(part, {}))
    return replace(JobConfig(), **settings), "nofold" not in parts, batch


def no_folding(enabled: bool):
    """Folding is off while `enabled` is False (the pairs cache answers 'nothing folds')."""
    original = folding.conv_bn_pairs
    folding.conv_bn_pairs = original if enabled else (lambda template, mode: [])
    return original


def measure(label: str, variants: list[str], rounds: int, timer) -> None:
    """Print one row per variant: first call's seconds, median img/s over rounds, ratio to the first variant."""
    rates = {v: [] for v in variants}
    first = {}
    for r in range(rounds + 1):
        for variant in variants:
            run, fold, batch = job_config(variant)
            original = no_folding(fold)
            try:
                started = time.perf_counter()
                rate = timer(run, batch)
                if r == 0:
                    first[variant] = time.perf_counter() - started
                else:
                    rates[variant].append(rate)
            finally:
                folding.conv_bn_pairs = original
    base = statistics.median(rates[variants[0]])
    for variant in variants:
        median = statistics.median(rates[variant])
        spread = f"{min(rates[variant]):.0f}-{max(rates[variant]):.0f}"
        print(f"{label:34} {variant:22} {first[variant]:8.1f} {median:9.0f} {spread:>13} {median / base:7.2f}",
              flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="study", choices=PRESET_NAMES)
    parser.add_argument("--methods", default="supervised,supcon")
    parser.add_argument("--populations", default="1,5")
    parser.add_argument("--variants", default="fp32,cl,bf16,bf16+cl,compile,bf16+compile,bf16+cl+compile",
                        help=f"'+'-joined switches ({', '.join(SWITCHES)}, nofold); the first is the reference")
    parser.add_argument("--inference_variants", default="fp32+nofold,fp32,cl+nofold,cl,bf16+cl,cl+compile",
                        help="variants of the evaluation rows")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n_test", type=int, default=4096)
    args = parser.parse_args()
    device = torch.device("cpu")
    variants, inference_variants = args.variants.split(","), args.inference_variants.split(",")
    for variant in variants + inference_variants:
        job_config(variant)
    print(f"device: {device_name(device)}; torch {torch.__version__}; preset {args.preset}; {args.steps} steps per "
          f"round, {args.rounds} rounds (+1 warm-up round), variants alternating")
    print(f"{'what':34} {'variant':22} {'first s':>8} {'img/s':>9} {'range':>13} {'ratio':>7}")
    ks = [int(k) for k in args.populations.split(",")]
    for method in [m for m in args.methods.split(",") if m]:
        recipe = preset_config(method, args.preset)
        batch = recipe.batch_size
        data, _, _ = random_dataset(recipe.dataset, (args.steps + 1) * batch, 0, device)
        size = DATASETS[recipe.dataset].image_size
        plain = [time_plain(recipe.arch, method, size, batch, args.steps, device) for _ in range(args.rounds)]
        print(f"{recipe.arch + ' ' + method + f' b{batch}':34} {'plain eager fp32':22} {'':8} "
              f"{statistics.median(plain):9.0f}", flush=True)
        for k in ks:
            measure(f"{recipe.arch} {method} b{batch} K={k}", variants, args.rounds,
                    lambda run, _: time_population(recipe.arch, method, data, recipe, k, batch, args.steps, device,
                                                   run))
    recipe = preset_config("supervised", args.preset)
    data, _, _ = random_dataset(recipe.dataset, 0, args.n_test, device)
    plain = [time_plain_inference(recipe.arch, data.test_images, data.normalize, device) for _ in range(args.rounds)]
    print(f"{recipe.arch + ' evaluation':34} {'plain eager fp32':22} {'':8} {statistics.median(plain):9.0f}")
    for k in ks:
        measure(f"{recipe.arch} evaluation K={k}", inference_variants, args.rounds,
                lambda run, batch: time_evaluation(recipe.arch, data, k, device, run, batch))


if __name__ == "__main__":
    keep_freed_memory()  # as every script does (common.runtime)
    main()
