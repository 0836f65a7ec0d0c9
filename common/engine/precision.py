"""Per-device defaults for bf16 autocast, decided in one place so that every path a GPU takes can also be switched on
for the CPU (and so is exercised by the test suite there).

bf16 autocast defaults on for CUDA, and on the CPU where the processor computes in bf16 natively: its AVX-512 BF16
instructions (avx512_bf16) or AMX tiles (amx_bf16), read from the CPU's feature flags. Without them oneDNN emulates
bf16 through fp32 and a bf16 matmul ran 3-5x slower than fp32 (a 2-core Xeon this project measured: 46-52 against
166-259 GFLOP/s); with avx512_bf16 (a 2-core AMD EPYC here: 375-423 against 137-190 GFLOP/s) WRN-10-1's training
steps ran 1.9-2.1x faster at the same accuracies (docs/speed.md). `--amp` / `--no-amp` override the default.
"""
from __future__ import annotations

from contextlib import nullcontext
from functools import lru_cache
from pathlib import Path

import torch

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@lru_cache(maxsize=None)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (/proc/cpuinfo), empty elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def native_bf16_flags() -> list[str]:
    """Which of the flags that give native bf16 arithmetic this CPU has (empty: none, or not Linux x86)."""
    flags = cpu_flags()
    return [flag for flag in NATIVE_BF16_FLAGS if flag in flags]


def amp_enabled(amp: bool | None, device: torch.device) -> bool:
    """`--amp` / `--no-amp` as given, else the device's default: on for CUDA, on for a CPU with native bf16."""
    if amp is not None:
        return bool(amp)
    return device.type == "cuda" or (device.type == "cpu" and bool(native_bf16_flags()))


def amp_reason(amp: bool | None, device: torch.device) -> str:
    """Why bf16 autocast is on or off, for the log: 'bf16 autocast on (the CPU has avx512_bf16)'."""
    state = "on" if amp_enabled(amp, device) else "off"
    if amp is not None:
        return f"bf16 autocast {state} (--{'' if amp else 'no-'}amp)"
    if device.type == "cuda":
        return "bf16 autocast on (CUDA)"
    flags = native_bf16_flags()
    return f"bf16 autocast {state} ({'the CPU has ' + ', '.join(flags) if flags else 'no native bf16 on this CPU'})"


def channels_last_enabled(channels_last: bool | None, device: torch.device) -> bool:
    """`--channels_last` / `--no-channels_last` as given, else the device's default (on for the CPU)."""
    return device.type == "cpu" if channels_last is None else bool(channels_last)


def compile_enabled(compile: bool | None, device: torch.device) -> bool:
    """`--compile` / `--no-compile` as given, else the device's default (off everywhere)."""
    return False if compile is None else bool(compile)


def autocast(amp: bool | None, device: torch.device):
    """The bf16 autocast context of `device` when amp is enabled there, else a no-op context."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if amp_enabled(amp, device) else nullcontext()
