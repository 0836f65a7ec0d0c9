"""Linear probes: how linearly decodable labels are from frozen features (Caron et al. 2020's transfer
evaluation, after Goyal et al. 2019). Arrays in, arrays out, vectorised over models.

The protocol is frozen here so that only the features change between the compared networks (Caron et al.: the
probe protocol moves accuracy more than pruning does): features standardised with the training features' mean and
std, a multinomial logistic regression from zero weights, full-batch Adam for `steps` steps with L2 weight decay.
Deterministic: no sampling anywhere."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def linear_probe_accuracy(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                          test_labels: torch.Tensor, num_classes: int, steps: int = 300, learning_rate: float = 0.05,
                          weight_decay: float = 1e-4) -> torch.Tensor:
    """train_features [M, N, D], train_labels [N], test_features [M, T, D], test_labels [T] -> test accuracy [M] of a
    linear classifier trained on each model's features."""
    train, test = _standardised(train_features.double(), test_features.double())
    models, _, dim = train.shape
    weight = torch.zeros(models, dim, num_classes, dtype=train.dtype, device=train.device, requires_grad=True)
    bias = torch.zeros(models, 1, num_classes, dtype=train.dtype, device=train.device, requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=learning_rate)
    targets = train_labels.to(train.device).repeat(models)
    with torch.enable_grad():
        for _ in range(steps):
            logits = torch.baddbmm(bias, train, weight)
            loss = F.cross_entropy(logits.flatten(0, 1), targets) * models  # each model its own mean loss
            loss = loss + 0.5 * weight_decay * weight.pow(2).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        predictions = torch.baddbmm(bias, test, weight).argmax(-1)
        return (predictions == test_labels.to(test.device)).double().mean(1).cpu()


def _standardised(train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both sets scaled by the training features' per-dimension mean and std (a dead dimension keeps std 1)."""
    mean = train.mean(1, keepdim=True)
    std = train.std(1, keepdim=True)
    std = torch.where(std > 1e-12, std, torch.ones_like(std))
    return (train - mean) / std, (test - mean) / std
