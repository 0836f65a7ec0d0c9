"""Benchmark: torch k-NN probes (common.metrics.knn.knn_predict) vs scikit-learn, for one WRN-16-2 model.

What it measures. Prediction depth fits one k-NN probe (k=30, Euclidean, uniform votes) per hidden
representation of a model: WRN-16-2 has 16 probes of widths [16] + [32]*5 + [64]*5 + [128]*5, the support set
is the 50,000 CIFAR-10 training images and the queries the 10,000 test images. For each probe this script
draws seeded random post-ReLU-like features (non-negative, with a common offset as pooled features have) and
random labels in 0..9, then times
  * ours:    knn_predict(...) on --device (default cuda if available, else cpu), including the host->device
             copy, a device synchronise and the copy of the labels back (numpy in -> numpy out), and
  * sklearn: KNeighborsClassifier(n_neighbors=k).fit(support).predict(queries) on CPU,
and prints per probe: width, both times, the speed-up sklearn_s / ours_s ("sk/ours", > 1: ours is faster)
and the fraction of queries on which both predict the same label (expected 1.0000). Random labels make most
votes close, which is the hardest case for parity; the timings do not depend on the labels.

Usage:  python bench/bench_knn.py                       # full size (slow with sklearn on a small CPU)
        python bench/bench_knn.py --n_support 10000 --n_query 2000 --probes 4
"""
import argparse
import os
import platform
import sys
import time

import numpy as np
import torch
from sklearn.neighbors import KNeighborsClassifier

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from common.metrics.knn import knn_predict  # noqa: E402
from common.runtime import keep_freed_memory  # noqa: E402

keep_freed_memory()  # as every script does (common.runtime)

WIDTHS = [16] + [32] * 5 + [64] * 5 + [128] * 5  # WRN-16-2 probes, in depth order

p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
p.add_argument("--n_support", type=int, default=50_000)
p.add_argument("--n_query", type=int, default=10_000)
p.add_argument("--probes", type=int, default=len(WIDTHS), help="run only the first P probes")
p.add_argument("--k", type=int, default=30)
p.add_argument("--chunk_size", type=int, default=2048)
p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
p.add_argument("--seed", type=int, default=0)
args = p.parse_args()

device = torch.device(args.device)
if device.type == "cuda":
    name = torch.cuda.get_device_name(device)
else:
    name = f"{platform.processor() or platform.machine()} cpu ({torch.get_num_threads()} threads)"
sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
print(f"device: {name} | support {args.n_support} x query {args.n_query}, k={args.k}, {args.probes} probes")

rng = np.random.default_rng(args.seed)
labels = rng.integers(0, 10, args.n_support)
if device.type == "cuda":  # warm-up: CUDA context, cuBLAS handles
    knn_predict(np.zeros((64, 8), np.float32), labels[:64], np.zeros((8, 8), np.float32), 5, device=device)
rows, total_ours, total_sk, agree = [], 0.0, 0.0, []
print(f"{'probe':>5} {'width':>5} {'ours s':>8} {'sklearn s':>9} {'sk/ours':>7} {'agree':>7}")
for i, width in enumerate(WIDTHS[:args.probes]):
    feats = (np.maximum(rng.normal(size=(args.n_support + args.n_query, width)), 0) + 3).astype(np.float32)
    support, query = feats[:args.n_support], feats[args.n_support:]
    sync()
    t0 = time.perf_counter()
    ours = knn_predict(support, labels, query, args.k, chunk_size=args.chunk_size, device=device)
    sync()
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = KNeighborsClassifier(n_neighbors=args.k).fit(support, labels).predict(query)
    t_sk = time.perf_counter() - t0
    a = float((ours == ref).mean())
    total_ours, total_sk = total_ours + t_ours, total_sk + t_sk
    agree.append(a)
    print(f"{i:>5} {width:>5} {t_ours:>8.3f} {t_sk:>9.3f} {t_sk / t_ours:>7.2f} {a:>7.4f}")
print(f"{'total':>11} {total_ours:>8.3f} {total_sk:>9.3f} {total_sk / total_ours:>7.2f} {np.mean(agree):>7.4f}")
