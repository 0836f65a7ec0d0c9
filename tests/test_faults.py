"""Runs survive being killed: SIGKILL or SIGTERM mid-run, rerun the same command, get the same model bit for bit."""
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from common.paths import Paths
from common.spec import ModelSpec
from common.zoo import load_member

REPO = Path(__file__).resolve().parent.parent
SEEDS = (0, 1)


def command(root):
    return [sys.executable, str(REPO / "sup_training.py"), "--preset", "demo", "--index_start", "0",
            "--index_end", "1", "--pruning_percentages", "0.5", "--epochs", "3", "--lr_milestones", "2", "--batch_size", "128",
            "--checkpoint_every", "1", "--output_root", str(root), "--no-progress"]


def weights(root):
    paths = Paths(root)
    return [load_member(paths, ModelSpec("supervised", "wrn10_1", "digits", "gmp_early", 0.5, s))[0] for s in SEEDS]


def run_until_state_then(root, sig):
    """Start training, wait until a resumable state is on disk (training is under way), then send `sig`."""
    proc = subprocess.Popen(command(root), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state_dir = Paths(root).model_dir("digits", "supervised") / ".state"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if state_dir.is_dir() and any(state_dir.glob("*.pt")):
            break
        time.sleep(0.05)
    time.sleep(0.2)  # inside the next epoch
    assert proc.poll() is None, "training finished before it could be interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("uninterrupted")
    subprocess.run(command(root), cwd=REPO, check=True, capture_output=True)
    return weights(root)


def assert_same(resumed, reference):
    for got, want in zip(resumed, reference):
        assert got.keys() == want.keys()
        for name in want:
            assert torch.equal(got[name], want[name]), name


def test_sigkill_mid_run_then_rerun_resumes_to_identical_weights(tmp_path, reference):
    code, _ = run_until_state_then(tmp_path / "run", signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert not list(Paths(tmp_path / "run").models.rglob("*.safetensors")), "a killed run left a finished model"
    shutil.copytree(tmp_path / "run", tmp_path / "corrupt")
    check_corrupt_state_is_one_line(tmp_path / "corrupt")
    tmp_path = tmp_path / "run"
    subprocess.run(command(tmp_path), cwd=REPO, check=True, capture_output=True)
    assert_same(weights(tmp_path), reference)
    assert not list((Paths(tmp_path).model_dir("digits", "supervised") / ".state").glob("*.pt"))


def test_sigterm_saves_state_exits_nonzero_and_says_how_to_resume(tmp_path, reference):
    code, err = run_until_state_then(tmp_path, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM
    last = err.strip().splitlines()[-1]
    assert "rerun the same command to resume" in last and "Traceback" not in err
    subprocess.run(command(tmp_path), cwd=REPO, check=True, capture_output=True)
    assert_same(weights(tmp_path), reference)


def check_corrupt_state_is_one_line(tmp_path):
    state = Paths(tmp_path).model_dir("digits", "supervised") / ".state"
    for f in state.glob("*.pt"):
        f.write_bytes(f.read_bytes()[:100])
    proc = subprocess.run(command(tmp_path), cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert "unreadable" in lines[-1] and "delete it" in lines[-1] and "Traceback" not in proc.stderr


def test_a_state_left_by_another_population_size_is_resumed(tmp_path, reference):
    """Stopped while both members trained as one population (the CPU default packs 8), rerun with one model per
    population: the saved population is found and resumed as it was packed, ending identical."""
    code, _ = run_until_state_then(tmp_path, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM
    proc = subprocess.run(command(tmp_path) + ["--population_size", "1"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "resuming" in proc.stderr
    assert_same(weights(tmp_path), reference)
    assert not any((Paths(tmp_path).model_dir("digits", "supervised") / ".state").glob("*.pt"))


def test_a_state_holding_models_not_asked_is_named_in_one_line(tmp_path):
    code, _ = run_until_state_then(tmp_path, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM
    state = next((Paths(tmp_path).model_dir("digits", "supervised") / ".state").glob("*.pt"))
    only_seed0 = [a if a != "1" or i != command(tmp_path).index("--index_end") + 1 else "0"
                  for i, a in enumerate(command(tmp_path))]
    proc = subprocess.run(only_seed0, cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "resume state" in line]
    assert len(lines) == 1 and str(state) in lines[0] and "seed1" in lines[0], proc.stderr
    assert state.is_file()  # left where it was, for the run that asks for it
