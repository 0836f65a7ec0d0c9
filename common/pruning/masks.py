"""Unstructured pruning masks of a population: one `Masks` type, and the exact ranking every criterion uses.

Masks are plain boolean tensors (True = kept) stacked along a leading member dimension [P, ...], without
torch.nn.utils.prune (its forward pre-hooks rename state_dict keys and fight torch.compile). Every member is
ranked on its own, never across the stack.

Exact counts: a member prunes exactly round(sparsity * pool size) entries, ties in magnitude broken by position
(a stable sort), so the measured sparsity equals the target whatever the weights. Entries already pruned rank
below everything, so masks only ever shrink (gradual pruning keeps earlier decisions).
"""
from __future__ import annotations

from typing import Iterator, Mapping

import torch


class Masks(Mapping):
    """Stacked keep-masks {parameter name: bool [P, ...]} of a population; sparsity is computed here only."""

    def __init__(self, tensors: Mapping[str, torch.Tensor] | None = None):
        self.tensors = dict(tensors or {})

    # -- a read-only mapping of name -> stacked mask --
    def __getitem__(self, name: str) -> torch.Tensor:
        return self.tensors[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def update(self, other: Mapping[str, torch.Tensor]) -> None:
        """Replace (or add) the masks of the tensors in `other`; masks of other tensors are kept."""
        self.tensors.update(other)

    # -- measuring --
    def member_pruned(self, member: int) -> int:
        """Entries that member `member` prunes."""
        return sum(int((~mask[member]).sum()) for mask in self.tensors.values())

    def member_sparsity(self, member: int) -> float:
        """Fraction of the masked entries that member `member` prunes (0.0 without masks), from exact counts."""
        if not self.tensors:
            return 0.0
        return self.member_pruned(member) / sum(mask[member].numel() for mask in self.tensors.values())

    def sparsity(self) -> list[float]:
        """Fraction pruned per member over all masked tensors."""
        members = next(iter(self.tensors.values())).shape[0] if self.tensors else 0
        return [self.member_sparsity(i) for i in range(members)]

    def layer_sparsity(self, member: int) -> dict[str, float]:
        """Fraction pruned in each masked tensor of one member (1 - its density)."""
        return {name: float((~mask[member]).float().mean()) for name, mask in self.tensors.items()}

    def member(self, member: int) -> dict[str, torch.Tensor]:
        """One member's masks, unstacked; {} when that member prunes nothing (a dense member of a mixed
        population is stored like one trained alone)."""
        masks = {name: mask[member] for name, mask in self.tensors.items()}
        return {} if all(bool(m.all()) for m in masks.values()) else masks

    # -- holding --
    @torch.no_grad()
    def apply_(self, tensors: Mapping[str, torch.Tensor], names=None) -> None:
        """Zero the pruned entries of `tensors` in place (weights, gradients or optimizer buffers alike)."""
        apply_masks_(tensors, self.tensors if names is None else {n: self.tensors[n] for n in names})

    @torch.no_grad()
    def hold(self, params: Mapping[str, torch.Tensor], optimizer: torch.optim.Optimizer) -> None:
        """Zero pruned weights and their optimizer state (SGD's momentum, Adam's moments), so that neither momentum
        nor weight decay can regrow them."""
        self.apply_(params)
        for name, mask in self.tensors.items():
            for buffer in optimizer.state.get(params[name], {}).values():
                if torch.is_tensor(buffer) and buffer.shape == mask.shape:
                    buffer.mul_(mask.to(buffer.dtype))

    # -- storing --
    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: mask.cpu() for name, mask in self.tensors.items()}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor], device="cpu") -> "Masks":
        return cls({name: mask.to(device) for name, mask in state.items()})


@torch.no_grad()
def apply_masks_(tensors: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> None:
    """Zero the pruned entries in place (weights, gradients or optimizer buffers alike)."""
    for name, mask in masks.items():
        tensors[name].mul_(mask.to(tensors[name].dtype))


# ---- exact ranking ---------------------------------------------------------------------------------

def _counts(sparsity, members: int, size: int) -> torch.Tensor:
    """Entries to prune per member: round(s * size) with Python's rounding, one sparsity per member allowed."""
    values = sparsity.tolist() if torch.is_tensor(sparsity) else sparsity
    values = [values] * members if isinstance(values, (int, float)) else list(values)
    if len(values) != members:
        raise ValueError(f"{len(values)} sparsities for {members} members")
    for s in values:
        if not 0.0 <= s < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {s}")
    return torch.tensor([int(round(s * size)) for s in values])


def _lowest(scores: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """scores [P, n] -> keep-mask [P, n] that drops each row's counts[p] lowest scores (stable tie-break)."""
    order = torch.argsort(scores, dim=1, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(scores.shape[1], device=scores.device).expand_as(order))
    return rank >= counts.to(scores.device)[:, None]


def _split(keep: torch.Tensor, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    sizes = [t[0].numel() for t in tensors.values()]
    return {n: part.reshape(t.shape) for (n, t), part in zip(tensors.items(), keep.split(sizes, dim=1))}


def lowest_scores(scores: Mapping[str, torch.Tensor], sparsity, scope: str) -> Masks:
    """Keep-masks that drop the lowest scores {name: [P, ...]} of each member: `scope='global'` ranks all
    tensors of a member together, `scope='layer'` gives every tensor the same sparsity."""
    members = next(iter(scores.values())).shape[0]
    flat = {n: s.flatten(1) for n, s in scores.items()}
    if scope == "layer":
        return Masks({n: _lowest(s, _counts(sparsity, members, s.shape[1])).view_as(scores[n])
                      for n, s in flat.items()})
    if scope != "global":
        raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}")
    joined = torch.cat(list(flat.values()), dim=1)
    return Masks(_split(_lowest(joined, _counts(sparsity, members, joined.shape[1])), scores))
