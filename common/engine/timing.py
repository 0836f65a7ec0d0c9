"""Where a run's wall time goes: named regions timed with `timed(name)`, accumulated process-wide.

Each region's time is counted once, in the innermost region that is open (a region nested in another is subtracted
from its parent), so the totals of one process add up to the time spent inside regions, and a stage's wall time
minus that sum is what no region covers. Regions cost a clock read and a dict update: the engine keeps them on
always and writes one line per trained population to the log; `bench/profile_presets.py` reads the totals per stage.

On CUDA, kernels run asynchronously: a region then holds the time to launch its work unless `synchronize` is on
(the profile turns it on), which waits for the device at every region boundary.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch


@dataclass
class Timings:
    """Seconds and calls per region name, each region's own time only (not that of regions inside it)."""

    seconds: dict = field(default_factory=dict)
    calls: dict = field(default_factory=dict)
    synchronize: bool = False
    _open: list = field(default_factory=list)  # per open region: [name, started, seconds of regions inside it]

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()

    def snapshot(self) -> dict[str, float]:
        return dict(self.seconds)

    def since(self, before: dict[str, float]) -> dict[str, float]:
        """Seconds per region added after `before` (a snapshot), the regions that gained time only."""
        spent = {name: s - before.get(name, 0.0) for name, s in self.seconds.items()}
        return {name: s for name, s in spent.items() if s > 0}

    def _now(self) -> float:
        if self.synchronize and torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
        return time.perf_counter()

    @contextmanager
    def region(self, name: str):
        self._open.append([name, self._now(), 0.0])
        try:
            yield
        finally:
            name, started, inner = self._open.pop()
            total = self._now() - started
            self.seconds[name] = self.seconds.get(name, 0.0) + total - inner
            self.calls[name] = self.calls.get(name, 0) + 1
            if self._open:
                self._open[-1][2] += total


TIMINGS = Timings()


def timed(name: str):
    """`with timed("evaluation"): ...` adds the block's own wall time to the process-wide TIMINGS."""
    return TIMINGS.region(name)


def summary(spent: dict[str, float]) -> str:
    """'steps 12.3 s, augmentation 1.2 s, ...', largest first."""
    return ", ".join(f"{name} {s:.1f} s" for name, s in sorted(spent.items(), key=lambda kv: -kv[1]))
