"""Supervised contrastive loss (Khosla et al. 2020, the L_out form), SimCLR when no labels are given."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

UNIT_NORM_TOLERANCE = 1e-2  # |‖z‖ - 1| allowed: a bf16 projection normalised in bf16 is within 0.4 %


class SupConLoss(nn.Module):
    """`loss(features, labels=None)` with features [batch, n_views, dim], L2-normalised along dim, and labels [batch]
    (one per image, shared by its views).

    Every view is an anchor (contrast_mode 'all'); its positives are the other views with the same label (with
    labels) or the other views of the same image (SimCLR). For anchor i with positives P(i) and all other views A(i):

        l_i = -(T / base_T) * mean_{p in P(i)} log( exp(z_i.z_p / T) / sum_{a in A(i)} exp(z_i.z_a / T) )

    and the loss is the mean of l_i over anchors that have at least one positive. An anchor without positives
    adds nothing: Corti et al.'s copy of HobbitLong's SupContrast divides 0 by 0 there and returns NaN for the
    whole batch; SupContrast since its fix divides by 1 and still counts the anchor in the mean. We leave it out of
    the mean, so the value does not depend on how many such anchors a batch has (docs/fidelity.md). The
    T/base_T factor is kept because the paper's recipe used it (T=0.5, base_T=0.07 scales the loss by 7.14).

    Features must be unit vectors, as the projection head's output is: unnormalised ones give a loss of another
    scale (thousands) without error. A call outside vmap checks it and raises a ValueError; `normalize=True`
    L2-normalises them here instead. Under torch.func.vmap (the toolkit's populations) the check is skipped, as a
    data-dependent branch cannot run there.

    The similarity matrix and softmax are computed in fp32, also under autocast, and the loss itself has no
    data-dependent Python control flow, so it can be vmapped over a population."""

    def __init__(self, temperature: float = 0.07, base_temperature: float = 0.07, normalize: bool = False):
        super().__init__()
        if temperature <= 0 or base_temperature <= 0:
            raise ValueError(f"temperatures must be > 0, got temperature={temperature}, "
                             f"base_temperature={base_temperature}")
        self.temperature = temperature
        self.base_temperature = base_temperature
        self.normalize = normalize

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        self._check(features, labels)
        batch, n_views, _ = features.shape
        with torch.autocast(device_type=features.device.type, enabled=False):
            # view-major order, as torch.cat(torch.unbind(features, 1)) in the reference implementation
            z = features if features.dtype == torch.float64 else features.float()
            z = F.normalize(z, dim=-1) if self.normalize else z
            z = z.transpose(0, 1).reshape(batch * n_views, -1)
            ids = labels if labels is not None else torch.arange(batch, device=features.device)
            ids = ids.reshape(1, batch).expand(n_views, batch).reshape(-1)
            is_self = torch.eye(batch * n_views, dtype=torch.bool, device=features.device)
            positive = (ids[:, None] == ids[None, :]) & ~is_self

            logits = (z @ z.T / self.temperature).masked_fill(is_self, float("-inf"))
            log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
            n_positive = positive.sum(1)
            mean_log_prob_pos = log_prob.masked_fill(~positive, 0.0).sum(1) / n_positive.clamp(min=1)
            anchor_loss = -(self.temperature / self.base_temperature) * mean_log_prob_pos
            has_positive = (n_positive > 0).to(z.dtype)
            return (anchor_loss * has_positive).sum() / has_positive.sum().clamp(min=1.0)

    def _check(self, features: torch.Tensor, labels: torch.Tensor | None) -> None:
        """One ValueError sentence for features or labels that do not fit (shapes: also under vmap)."""
        if features.dim() != 3:
            raise ValueError(f"SupConLoss: features must be [batch, n_views, dim], got shape {tuple(features.shape)}")
        batch = features.shape[0]
        if labels is not None and labels.numel() != batch:
            raise ValueError(f"SupConLoss: {labels.numel()} labels for a batch of {batch} images (features "
                             f"{tuple(features.shape)}): pass one label per image, shared by its views")
        if self.normalize or torch.compiler.is_compiling() or torch._C._functorch.is_batchedtensor(features):
            return  # vmap (and a compiled graph) cannot branch on values
        norms = features.detach().float().norm(dim=-1)
        if norms.numel() and float((norms - 1).abs().max()) > UNIT_NORM_TOLERANCE:
            raise ValueError(f"SupConLoss: features must be L2-normalised along their last dim (norms from "
                             f"{float(norms.min()):.3g} to {float(norms.max()):.3g}): normalise them "
                             f"(torch.nn.functional.normalize(features, dim=-1)) or use SupConLoss(..., "
                             f"normalize=True)")
