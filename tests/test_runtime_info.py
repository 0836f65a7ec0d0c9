"""What a checkpoint records about the machine that trained it: the processor model and the instruction sets its
kernels ran with, which decide float rounding and so the exact counts of a run (docs/reliability.md)."""
import os
import subprocess
import sys

import pytest
import torch

from common import checkpoint as ckpt
from common.paths import REPO_ROOT, Paths
from common.spec import ModelSpec
from common.studies.tickets import readme as tickets_readme


def test_runtime_names_the_processor_and_its_instruction_sets():
    runtime = ckpt.runtime_info(torch.device("cpu"))
    assert runtime["processor"] == ckpt.processor_model() and runtime["processor"] not in ("", "x86_64")
    assert runtime["aten_isa"] == torch.backends.cpu.get_cpu_capability()
    if torch.backends.mkldnn.is_available():
        assert runtime["onednn_isa"]
    assert runtime["processor"] in ckpt.describe_runtime(runtime)
    old = {"device": "cpu", "device_name": "x86_64", "threads": 2}  # a checkpoint written before these fields
    assert ckpt.describe_runtime(old) == "2 threads on cpu (x86_64)"


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="oneDNN absent")
def test_a_capped_instruction_set_is_recorded():
    code = ("import torch; from common import checkpoint as c; "
            "print(c.describe_runtime(c.runtime_info(torch.device('cpu'))))")
    env = dict(os.environ, ONEDNN_MAX_CPU_ISA="SSE41")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO_ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert f"on {ckpt.processor_model()}, oneDNN at Intel SSE4.1" in out, out
    assert out.rstrip().endswith("capped by ONEDNN_MAX_CPU_ISA=SSE41"), out


def test_the_tickets_measured_by_line_names_the_processor(tmp_path):
    spec = ModelSpec("supervised", "wrn10_1", "digits", "imp", 0.36, 0, "tickets",
                     (("objective", "rotnet"), ("level", 1), ("rewind", "5it"), ("init", "rewind")))
    runtime = dict(ckpt.runtime_info(torch.device("cpu")), threads=2)
    meta = dict(spec=spec.to_meta(), runtime=runtime, versions={"torch": torch.__version__})
    ckpt.save_model(Paths(tmp_path).checkpoint(spec), {"w": torch.zeros(1)}, meta)
    line = tickets_readme.where_measured(Paths(tmp_path), "digits")
    assert line == f"2 threads on {ckpt.describe_runtime(runtime).split(' on ', 1)[1]}, torch {torch.__version__}"
    assert ckpt.processor_model() in line
