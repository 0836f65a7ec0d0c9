"""Gradual magnitude pruning (Zhu & Gupta 2017): the cubic sparsity schedule and the steps of its pruning events."""
from __future__ import annotations

from dataclasses import dataclass


def gmp_sparsity(step: int, final_sparsity: float, begin_step: int, end_step: int,
                 initial_sparsity: float = 0.0) -> float:
    """Zhu & Gupta's cubic schedule: s_t = s_f + (s_i - s_f)(1 - (t - t0)/(t_end - t0))^3, initial_sparsity up
    to begin_step and exactly final_sparsity from end_step on. Sparsities are fractions pruned, in [0, 1) as the
    prune functions take them, and the schedule never lowers sparsity (pruned weights stay pruned)."""
    for name, value in (("final_sparsity", final_sparsity), ("initial_sparsity", initial_sparsity)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1) (the fraction of weights pruned), got {value}")
    if initial_sparsity > final_sparsity:
        raise ValueError(f"initial_sparsity ({initial_sparsity}) must not exceed final_sparsity ({final_sparsity}): "
                         f"pruned weights stay pruned")
    if begin_step >= end_step:
        raise ValueError(f"begin_step ({begin_step}) must be < end_step ({end_step})")
    if step <= begin_step:
        return initial_sparsity
    if step >= end_step:
        return final_sparsity
    progress = (step - begin_step) / (end_step - begin_step)
    return final_sparsity + (initial_sparsity - final_sparsity) * (1.0 - progress) ** 3


@dataclass(frozen=True)
class GMPWindow:
    """A GMP window in optimizer steps counted from 0 (step t comes after t updates)."""

    begin_step: int
    end_step: int
    frequency: int

    def events(self) -> list[int]:
        """Steps at which masks are recomputed: begin + k*frequency, plus end_step so the final target is met.

        The authors prune when `t % frequency == 0` with t counted from 1 (t = our step + 1), so with their
        later-GMP defaults (2440, 4760, 62) their first event is at t = 2480, 40 steps after begin_step (and
        prunes nothing: its target is the schedule's value at begin_step, 0), and their last at 4712, short of
        end_step, which leaves s_f(1 - 5.5e-5). Zhu & Gupta count from begin_step, as we do
        (docs/fidelity.md)."""
        steps = list(range(self.begin_step, self.end_step + 1, self.frequency))
        return steps if steps[-1] == self.end_step else steps + [self.end_step]
