"""Checks run after the flags are validated and before a stage writes anything: its output folders can be written
and their disk has room for what the run will write. A bad --output_root or a full disk then costs one line up
front (exit status 2) instead of a traceback after hours of training.

Space estimate (deliberately simple and generous): a model needs about MODEL_BYTES_FACTOR x its parameter bytes.
Its finished checkpoint is ~1.25x (fp32 weights + one byte per mask entry); while its population trains, the
resumable state holds weights, momentum and masks (~2.25x), and an atomic write briefly keeps the old and the new
copy side by side. Analyses write tables, figures and small prediction caches: ANALYSIS_BYTES covers them at
CIFAR-10 scale.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from common.errors import UsageError

MODEL_BYTES_FACTOR = 4
ANALYSIS_BYTES = 64 * 2**20


def check_writable(folder: Path) -> None:
    """Create `folder` if needed and write and remove a temporary file in it; a UsageError naming it otherwise."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".preflight.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise UsageError(f"cannot write to {folder} ({type(err).__name__}): choose another --output_root or fix "
                         f"its permissions")


def check_free_space(folder: Path, need_bytes: int) -> None:
    """A UsageError when the disk holding `folder` (or its nearest existing parent) has less than `need_bytes`."""
    existing = Path(folder)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if free < need_bytes:
        raise UsageError(f"{folder}: {_size(free)} free on its disk, this run needs about {_size(need_bytes)}: free "
                         f"some space or choose another --output_root")


def parameter_bytes(network: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in network.parameters())


def training_bytes(network: torch.nn.Module, models: int) -> int:
    """Disk needed to train `models` models shaped like `network` (see the module docstring)."""
    return MODEL_BYTES_FACTOR * parameter_bytes(network) * models


def check_outputs(folders: list[Path], need_bytes: int) -> None:
    """Every folder writable; the first (where the bulk goes) on a disk with `need_bytes` free."""
    for folder in folders:
        check_writable(folder)
    check_free_space(folders[0], need_bytes)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def check_slurm() -> None:
    """Before submitting: Slurm's commands are here and its controller answers, or one line saying so."""
    if shutil.which("sbatch") is None:
        raise UsageError("--launcher slurm: sbatch is not on this machine's PATH; run on a Slurm login node, or use "
                         "--launcher local")
    try:
        answer = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        raise UsageError("--launcher slurm: the Slurm controller did not answer `sinfo` within 30 s; check the "
                         "cluster, or use --launcher local")
    if answer.returncode != 0:
        why = (answer.stderr.strip().splitlines() or ["no answer"])[0][:200]
        raise UsageError(f"--launcher slurm: the Slurm controller does not answer ({why}); "
                         f"check `sinfo`, or use --launcher local")
