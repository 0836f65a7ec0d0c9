"""Supervised contrastive loss (Khosla et al. 2020, the L_out form), SimCLR when no labels are given."""
from __future__ import annotations

import torch
import torch.nn as nn


class SupConLoss(nn.Module):
    """`loss(features, labels=None)` with features [batch, n_views, dim], L2-normalised.

    Every view is an anchor (contrast_mode 'all'); its positives are the other views with the same label (with
    labels) or the other views of the same image (SimCLR). For anchor i with positives P(i) and all other views A(i):

        l_i = -(T / base_T) * mean_{p in P(i)} log( exp(z_i.z_p / T) / sum_{a in A(i)} exp(z_i.z_a / T) )

    and the loss is the mean of l_i over anchors that have at least one positive. An anchor without positives
    adds nothing (HobbitLong's SupContrast divides by 1 and still counts it in the mean; we leave it out of the
    mean so the value does not depend on how many such anchors a batch has). The T/base_T factor is kept because
    the paper's recipe used it (T=0.5, base_T=0.07 scales the loss by 7.14).

    The similarity matrix and softmax are computed in fp32, also under autocast, and the function has no
    data-dependent Python control flow, so it can be vmapped over a population."""

    def __init__(self, temperature: float = 0.07, base_temperature: float = 0.07):
        super().__init__()
        self.temperature = temperature
        self.base_temperature = base_temperature

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if features.dim() != 3:
            raise ValueError(f"features must be [batch, n_views, dim], got {tuple(features.shape)}")
        batch, n_views, _ = features.shape
        with torch.autocast(device_type=features.device.type, enabled=False):
            # view-major order, as torch.cat(torch.unbind(features, 1)) in the reference implementation
            z = features if features.dtype == torch.float64 else features.float()
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
