"""Inference over a population, all members on each batch: test loss and accuracy, outputs in dataset order,
and BatchNorm statistics recomputed for weights that no training produced (pruned or interpolated networks).

Evaluation and outputs run with BatchNorm folded into the convolutions before it (common.engine.folding): the same
function up to float rounding, one activation pass less per folded layer."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils._pytree import tree_map

from common.engine.folding import folded
from common.engine.population import Population
from common.engine.timing import timed


@torch.no_grad()
def evaluate(pop: Population, images: torch.Tensor, labels: torch.Tensor, normalize, batch: int = 1024):
    """Test loss and accuracy per member, in the test set's fixed order."""
    with timed("evaluation"):
        pop.eval()
        device = pop.device
        run = folded(pop, "logits")
        loss = torch.zeros(pop.size, device=device)
        correct = torch.zeros(pop.size, device=device)
        for start in range(0, len(labels), batch):
            x = normalize(images[start:start + batch].to(device))
            y = labels[start:start + batch].to(device)
            logits = run(x, "logits", shared_input=True).float()
            loss += F.cross_entropy(logits.flatten(0, 1), y.repeat(pop.size), reduction="none").view(pop.size,
                                                                                                    -1).sum(1)
            correct += (logits.argmax(-1) == y).sum(1)
        return (loss / len(labels)).cpu(), (correct / len(labels)).cpu()


@torch.no_grad()
def predict(pop: Population, images: torch.Tensor, normalize, mode: str = "logits", batch: int = 1024):
    """Member outputs over `images` in order, concatenated along examples: logits [P, N, C], features [P, N, D],
    or for mode='hidden' (features, [probe [P, N, d_l] for each probe])."""
    with timed("inference"):
        pop.eval()
        run = folded(pop, mode)
        chunks = [run(normalize(images[s:s + batch].to(pop.device)), mode, shared_input=True)
                  for s in range(0, len(images), batch)]
        return tree_map(lambda *parts: torch.cat([p.float() for p in parts], dim=1), *chunks)


@torch.no_grad()
def reset_bn(pop: Population, images: torch.Tensor, normalize, batch: int = 1024) -> None:
    """Recompute every member's BatchNorm running statistics from `images` (un-augmented, in order), as
    torch.optim.swa_utils.update_bn does for one network: statistics zeroed, then the cumulative average of the
    batch statistics (momentum 1/k at batch k), one training-mode pass. What interpolated or re-masked weights need
    before they are evaluated (Zhou et al.'s connectivity with BatchNorm reset). Always eager: the momentum changes
    at every batch, which a compiled forward would see as a new graph each time."""
    norms = [m for m in pop.template.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for name, buffer in pop.buffers.items():
        if name.endswith(("running_mean", "num_batches_tracked")):
            buffer.zero_()
        elif name.endswith("running_var"):
            buffer.fill_(1.0)
    momenta, compiled = [m.momentum for m in norms], pop.compiled
    try:
        pop.train().configure(compile=False)
        with timed("BatchNorm reset"):
            for k, start in enumerate(range(0, len(images), batch), start=1):
                for module in norms:  # momentum None (1/k, read from a tensor) cannot run under vmap
                    module.momentum = 1.0 / k
                pop(normalize(images[start:start + batch].to(pop.device)), "logits", shared_input=True)
    finally:
        for module, momentum in zip(norms, momenta):
            module.momentum = momentum
        pop.eval().configure(compile=compiled)
