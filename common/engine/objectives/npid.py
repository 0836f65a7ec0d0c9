"""NPID: non-parametric instance discrimination with NCE (Wu, Xiong, Yu & Lin 2018, "Unsupervised Feature
Learning via Non-Parametric Instance Discrimination"), one of Caron et al. 2020's pretexts. Every training image is
its own class, represented by a row of a memory bank of embeddings; the batch's embeddings are scored against
their own row and against K noise rows, and the bank follows the embeddings with momentum."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from common.engine.objectives.base import Objective, at_least_fp32

EPS = 1e-7  # Wu et al.'s NCECriterion adds this to both denominators


def initial_bank(generators: list[torch.Generator], n: int, dim: int, dtype: torch.dtype) -> Tensor:
    """[P, N, D] uniform in [-s, s], s = 1 / sqrt(D / 3) (Wu et al.'s lemniscate init), member p's rows drawn from
    generators[p] (on the CPU)."""
    s = 1.0 / math.sqrt(dim / 3)
    return torch.stack([torch.rand(n, dim, dtype=dtype, generator=g) * (2 * s) - s for g in generators])


def scores(f: Tensor, bank: Tensor, idx: Tensor, noise: Tensor, temperature: float) -> Tensor:
    """exp(v . f / T) [P, B, K + 1] of embeddings f [P, B, D] against their own bank rows (idx [P, B]: column 0)
    and the K noise rows (noise [P, K], shared by the batch's examples) of bank [P, N, D]."""
    members = torch.arange(f.shape[0], device=f.device)[:, None]
    positive = (f * bank[members, idx]).sum(-1, keepdim=True)
    negative = torch.einsum("pbd,pkd->pbk", f, bank[members, noise])
    return (torch.cat([positive, negative], -1) / temperature).exp()


def nce_loss(x: Tensor, n: int) -> Tensor:
    """Wu et al.'s NCE loss of normalised scores x = exp(v . f / T) / Z [P, B, K + 1] (positive first) with noise
    distribution Pn = 1 / n: -log(x / (x + K Pn)) for the positive, -log(K Pn / (x + K Pn)) for each negative,
    summed over the K + 1 terms and averaged over the batch -> [P]. EPS in the denominators as in their
    NCECriterion."""
    k_pn = (x.shape[-1] - 1) / n
    positive = x[..., 0] / (x[..., 0] + k_pn + EPS)
    negative = k_pn / (x[..., 1:] + k_pn + EPS)
    return -(positive.log() + negative.log().sum(-1)).mean(-1)


def updated_rows(bank: Tensor, idx: Tensor, f: Tensor, momentum: float) -> Tensor:
    """The bank rows idx [P, B] after Wu et al.'s update: normalise(momentum * v + (1 - momentum) * f)."""
    members = torch.arange(f.shape[0], device=f.device)[:, None]
    return F.normalize(momentum * bank[members, idx] + (1 - momentum) * f, dim=-1)


class NPID(Objective):
    """Wu et al.'s NPID with NCE on the L2-normalised embeddings of the 'projection' head (a linear layer), one
    augmented view per image. Per member: a memory bank [N, D] of the training set, created at the first call
    (lemniscate init from the member's generator), and the normalising constant Z, estimated once on the first
    batch as Wu et al.'s code does (mean of exp(v . f / T) over that batch's positives and negatives, times N) and
    kept. Only f carries gradients: the bank and Z are constants.

    Choice left open by the paper: one draw of K noise indices (uniform, with replacement, from the member's
    generator) is shared by all examples of a batch, instead of Wu et al.'s K per example, so the gather is
    [P, K, D] rather than [P, B, K, D]; every example's loss has the same expectation. As in Wu et al., a noise
    index may hit the example's own row."""

    reports_accuracy = False

    def __init__(self, temperature: float = 0.07, negatives: int = 4096, momentum: float = 0.5):
        self.temperature, self.negatives, self.momentum = temperature, negatives, momentum
        self.bank: Tensor | None = None  # [P, N, D]
        self.z: Tensor | None = None  # [P]

    def losses(self, pop, batches, idx):
        x = batches.images(idx)
        pop.train()
        f = at_least_fp32(pop(x, "projection"))
        n, idx = len(batches.data.train_labels), idx.to(f.device)
        if self.bank is None:
            self.bank = initial_bank(batches.generators, n, f.shape[-1], f.dtype)
        self.bank = self.bank.to(f.device)
        noise = torch.stack([torch.randint(0, n, (self.negatives,), generator=g) for g in batches.generators])
        with torch.autocast(device_type=f.device.type, enabled=False):  # exp(. / 0.07) needs more than bf16
            s = scores(f, self.bank, idx, noise.to(f.device), self.temperature)
            if self.z is None:
                self.z = s.detach().mean((1, 2)) * n
            self.z = self.z.to(f.device)
            loss = nce_loss(s / self.z[:, None, None], n)
        with torch.no_grad():
            self.bank[torch.arange(f.shape[0], device=f.device)[:, None], idx] = updated_rows(
                self.bank, idx, f.detach(), self.momentum)
        return loss, None

    def state_dict(self) -> dict:
        if self.bank is None:
            return {}
        return {"bank": self.bank.detach().clone(), "z": self.z.detach().clone()}

    def load_state_dict(self, state: dict) -> None:
        self.bank, self.z = state.get("bank"), state.get("z")
