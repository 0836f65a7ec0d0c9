"""Checkpoint I/O: safetensors files (tensors + one JSON metadata string) for finished models, `torch.save`
of tensors and plain containers for resumable run state (loaded with weights_only=True). Every write goes to a
temporary file in the same folder and is renamed into place, so a kill leaves the old file or the new one."""
from __future__ import annotations

import functools
import json
import os
import platform
import re
import sys
import tempfile
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


# Environment variables that cap the instruction sets the CPU kernels use (oneDNN's convolutions, ATen's vectorised
# kernels, MKL's matmuls): where one is set, a run's float rounding is that of another processor.
ISA_CAPS = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR")


def runtime_info(device: torch.device) -> dict:
    """Where a model was trained: what bit-identity depends on besides its recipe and seed (docs/reliability.md).
    On a CPU the processor model and the instruction sets its kernels use decide the float rounding, so that two
    machines' results differ in the last bits and, through training, in the exact PIE counts (docs/reliability.md)."""
    cuda = device.type == "cuda"
    info = {"device": str(device), "device_name": torch.cuda.get_device_name(device) if cuda else processor_model(),
            "threads": torch.get_num_threads(), "processor": processor_model(),
            "aten_isa": torch.backends.cpu.get_cpu_capability(), "onednn_isa": onednn_isa()}
    caps = {name: os.environ[name] for name in ISA_CAPS if os.environ.get(name)}
    return dict(info, isa_caps=caps) if caps else info


def describe_runtime(runtime: dict) -> str:
    """One phrase for a figure's 'measured by' line: '2 threads on AMD EPYC (family 25, model 17, stepping 1),
    oneDNN at Intel AVX2, ATen at AVX512' (a GPU: its name, then the host processor). Checkpoints older than
    the processor fields read 'cpu (x86_64)', as they recorded it."""
    threads = runtime.get("threads", "?")
    where = f"{threads} thread{'' if threads == 1 else 's'} on "
    if "processor" not in runtime:
        return where + f"{runtime.get('device', '?')} ({runtime.get('device_name') or 'unknown processor'})"
    if runtime.get("device", "cpu") != "cpu":
        where += f"{runtime['device_name']} ({runtime['device']}), host "
    kernels = [f"oneDNN at {runtime['onednn_isa']}" if runtime.get("onednn_isa") else "",
               f"ATen at {runtime['aten_isa']}" if runtime.get("aten_isa") else "",
               "capped by " + " ".join(f"{k}={v}" for k, v in runtime["isa_caps"].items())
               if runtime.get("isa_caps") else ""]
    return ", ".join([where + runtime["processor"], *filter(None, kernels)])


def processor_model() -> str:
    """'AMD EPYC (family 25, model 17, stepping 1)': the model name of /proc/cpuinfo with the numbers that tell
    processor generations apart where a hypervisor shortens the name; platform.processor() elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    fields = dict(re.findall(r"^(model name|cpu family|model|stepping)\s*:\s*(.*?)\s*$", text, re.M))
    name = fields.get("model name") or platform.processor() or platform.machine()
    numbers = ", ".join(f"{key.replace('cpu ', '')} {fields[key]}" for key in ("cpu family", "model", "stepping")
                        if key in fields)
    return f"{name} ({numbers})" if numbers else name


@functools.lru_cache(maxsize=1)
def onednn_isa() -> str:
    """The instruction set oneDNN runs its kernels with on this CPU (ONEDNN_MAX_CPU_ISA caps it), as oneDNN names
    it, e.g. 'Intel AVX-512 with Intel DL Boost and bfloat16 support'; '' where oneDNN is absent or silent.

    oneDNN tells it only in its verbose log, which it prints with printf on the process's stdout the first time
    verbose mode meets a primitive: one tiny convolution is run with file descriptor 1 pointed at a temporary file
    for those few milliseconds."""
    if not torch.backends.mkldnn.is_available():
        return ""
    image, kernel = torch.zeros(1, 16, 8, 8), torch.zeros(16, 16, 3, 3)
    sys.stdout.flush()  # Python's buffered text belongs on the real stdout
    with tempfile.TemporaryFile() as log:
        stdout = os.dup(1)
        try:
            os.dup2(log.fileno(), 1)
            with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                torch.mkldnn_convolution(image, kernel, None, [1, 1], [1, 1], [1, 1], 1)
        except RuntimeError:
            pass
        finally:
            os.dup2(stdout, 1)
            os.close(stdout)
        log.seek(0)
        found = re.search(r"info,cpu,isa:(.*)", log.read().decode(errors="replace"))
    return found.group(1).strip() if found else ""


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
