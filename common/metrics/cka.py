"""Linear centred kernel alignment (Kornblith et al. 2019), the biased (HSIC_0) estimator in its feature-space
form: CKA(X, Y) = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) with Xc, Yc the column-centred representations
[N, D] of the same N inputs. Equal to the Gram form tr(K_c L_c) / sqrt(tr(K_c K_c) tr(L_c L_c)) with linear kernels,
at O(N D^2) instead of O(N^2). Invariant to orthogonal transforms and isotropic scaling of either side."""
from __future__ import annotations

import torch


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x [..., N, Dx], y [..., N, Dy] -> CKA [...] (batched over leading dims, e.g. model pairs), in float64."""
    x = x.double() - x.double().mean(dim=-2, keepdim=True)
    y = y.double() - y.double().mean(dim=-2, keepdim=True)
    cross = (y.transpose(-1, -2) @ x).square().sum(dim=(-2, -1))
    self_x = (x.transpose(-1, -2) @ x).square().sum(dim=(-2, -1)).sqrt()
    self_y = (y.transpose(-1, -2) @ y).square().sum(dim=(-2, -1)).sqrt()
    return cross / (self_x * self_y)
