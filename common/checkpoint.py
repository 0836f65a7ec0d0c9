"""Checkpoint I/O: safetensors files (tensors + one JSON metadata string) for finished models, `torch.save`
of tensors and plain containers for resumable run state (loaded with weights_only=True). Every write goes to a
temporary file in the same folder and is renamed into place, so a kill leaves the old file or the new one."""
from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from common.errors import CheckpointError
from common.io import atomic_path

FORMAT = "prune-contrastive/1"
MASK_PREFIX = "mask::"


def library_versions() -> dict:
    return {"torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()}


def runtime_info(device: torch.device) -> dict:
    """Where a model was trained: what bit-identity depends on besides its recipe and seed (README, determinism)."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return {"device": str(device), "device_name": name, "threads": torch.get_num_threads()}


def save_model(path: Path, state: dict[str, torch.Tensor], meta: dict, masks: dict | None = None) -> None:
    """One model (or one part of a SupCon model): its state dict, its masks, and plain JSON metadata."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    tensors.update({MASK_PREFIX + k: m.detach().contiguous().cpu() for k, m in (masks or {}).items()})
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "meta": json.dumps(meta)})


def read_meta(path: Path) -> dict:
    try:
        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
        if header.get("format") != FORMAT:
            raise ValueError("not written by this toolkit")
        return json.loads(header["meta"])
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist")
    except (SafetensorError, OSError, ValueError, KeyError) as err:
        raise CheckpointError(f"{path} is unreadable or corrupt ({err}): delete it and retrain that model")


def load_model(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict]:
    """-> (state dict, masks, metadata)."""
    meta = read_meta(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is unreadable or corrupt ({err}): delete it and retrain that model")
    state = {k: v for k, v in tensors.items() if not k.startswith(MASK_PREFIX)}
    masks = {k[len(MASK_PREFIX):]: v for k, v in tensors.items() if k.startswith(MASK_PREFIX)}
    return state, masks, meta


def save_state(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_state(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a truncated or foreign file
        raise CheckpointError(f"resume state {path} is unreadable ({type(err).__name__}): delete it to start "
                              f"that population from scratch")
