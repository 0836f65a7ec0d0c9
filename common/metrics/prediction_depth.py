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


def prediction_depth(probe_preds, final_preds):
    """probe_preds [L, N] (depth order), final_preds [N] -> int array [N] with values in 0..L."""
    if hasattr(probe_preds, "detach"):
        probe_preds = probe_preds.detach().cpu().numpy()
    if hasattr(final_preds, "detach"):
        final_preds = final_preds.detach().cpu().numpy()
    probe_preds, final_preds = np.asarray(probe_preds), np.asarray(final_preds)
    if probe_preds.ndim != 2 or final_preds.shape != (probe_preds.shape[1],):
        raise ValueError(f"need probe_preds [L, N] and final_preds [N], got {probe_preds.shape} and {final_preds.shape}")
    agree = probe_preds == final_preds[None, :]
    # suffix_ok[l] = probes l..L-1 all agree (reverse cumulative AND); PD = number of layers where that fails.
    suffix_ok = np.logical_and.accumulate(agree[::-1], axis=0)[::-1]
    return (~suffix_ok).sum(axis=0)
