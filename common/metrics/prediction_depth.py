"""Prediction depth (Baldock, Maennel, Neyshabur 2021, arXiv 2106.09647).

k-NN probes (k=30) sit on L hidden representations of a network, in depth order. The prediction depth of an
example is the earliest layer l such that the probes at l and at every later layer all agree with the reference
label, i.e. one past the last disagreeing probe.

Reference label: Baldock et al. use the network's own final prediction (pass it as `final_preds`, the default
meaning). Corti et al.'s code compares with the ground-truth label instead; pass the true labels as
`final_preds` for that variant. Their code also reports 1 + max{l : probe_l disagrees} and 1 when nothing
disagrees, so PD=1 both when nothing disagrees and when only probe 0 disagrees. We do not copy that off-by-one:
here PD=0 when all probes agree, and PD=L when even the last probe disagrees.
"""
import numpy as np

from common.metrics.arrays import like_inputs, to_numpy


def prediction_depth(probe_preds, final_preds):
    """probe_preds [L, N] (depth order), final_preds [N] -> ints [N] with values in 0..L (numpy, or torch when an
    input is torch)."""
    probes, final = to_numpy(probe_preds), to_numpy(final_preds)
    if probes.ndim != 2 or final.shape != (probes.shape[1],):
        raise ValueError(f"prediction_depth needs probe_preds [L, N] (L probes' labels for N examples) and "
                         f"final_preds [N], got shapes {probes.shape} and {final.shape}")
    agree = probes == final[None, :]
    # suffix_ok[l] = probes l..L-1 all agree (reverse cumulative AND); PD = number of layers where that fails.
    suffix_ok = np.logical_and.accumulate(agree[::-1], axis=0)[::-1]
    return like_inputs((~suffix_ok).sum(axis=0), probe_preds, final_preds)
