"""Linear mode connectivity: the barrier of an error (or loss) curve e(t) measured at evenly spaced points of the
segment between two networks, t = 0 … 1 (endpoints included).

Two definitions, both reported:
- Zhou et al.'s (their notebook): m = (e(0) + e(1)) / 2, t* = argmax_t |m - e(t)| over all points, endpoints
  included, and MC = m - e(t*): negative for a barrier, about 0 when connected, +half the endpoint gap on a flat
  path between unequal endpoints.
- Frankle et al.'s: max_t e(t) - (e(0) + e(1)) / 2, positive for a barrier.
"""
from __future__ import annotations

import numpy as np


def zhou_barrier(curve: np.ndarray) -> np.ndarray:
    """curve [..., T] -> MC [...] (their sign: < 0 is a barrier)."""
    curve = np.asarray(curve, dtype=float)
    mean = (curve[..., 0] + curve[..., -1]) / 2
    farthest = np.abs(mean[..., None] - curve).argmax(axis=-1)
    return mean - np.take_along_axis(curve, farthest[..., None], axis=-1)[..., 0]


def frankle_barrier(curve: np.ndarray) -> np.ndarray:
    """curve [..., T] -> max_t e(t) - mean of the endpoints (> 0 is a barrier)."""
    curve = np.asarray(curve, dtype=float)
    return curve.max(axis=-1) - (curve[..., 0] + curve[..., -1]) / 2


def regimes(barrier: np.ndarray, cka: np.ndarray, threshold: float = -0.1) -> np.ndarray:
    """Zhou et al.'s regimes by stated rules [ours; their boundaries are drawn by hand], for grids [T, D]
    (temperature rows, density columns) of mean barriers (their sign) and CKA: 'I' where the barrier is below
    `threshold` (poorly connected); elsewhere 'II-B' where the CKA is above its row's median, else 'II-A'."""
    barrier, cka = np.asarray(barrier, dtype=float), np.asarray(cka, dtype=float)
    median = np.nanmedian(cka, axis=1, keepdims=True)
    return np.where(barrier < threshold, "I", np.where(cka > median, "II-B", "II-A"))
