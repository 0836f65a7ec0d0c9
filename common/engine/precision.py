"""Per-device defaults for bf16 autocast and torch.compile, decided in one place so that every path a GPU takes can
also be switched on for the CPU (and so is exercised by the test suite there).

bf16 autocast defaults on for CUDA and off for the CPU: on this project's 2-core CPU (AVX-512 bf16 present) a plain
bf16 matmul measured slower than fp32. torch.compile defaults off everywhere; `--compile` turns it on for any
device (inductor needs a C++ compiler on the CPU)."""
from __future__ import annotations

from contextlib import nullcontext

import torch


def amp_enabled(amp: bool | None, device: torch.device) -> bool:
    """`--amp` / `--no-amp` as given, else the device's default (on for CUDA only)."""
    return device.type == "cuda" if amp is None else bool(amp)


def autocast(amp: bool | None, device: torch.device):
    """The bf16 autocast context of `device` when amp is enabled there, else a no-op context."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if amp_enabled(amp, device) else nullcontext()
