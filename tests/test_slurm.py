"""Scaling out through Slurm (common/launch.py): the job plan of every study without Slurm, and a real one-node
Slurm cluster (tests/slurm/cluster.sh) that runs a small digits study through `--launcher slurm`, with one task
stopped by `scancel --signal=TERM` mid-run, requeued and finished, every file equal to a local run's."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import reproduce
from common.cli import run_main
from conftest import one_line_usage_error
from common.launch import LaunchConfig, describe
from common.studies import STUDIES

REPO = Path(__file__).resolve().parent.parent
CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"


# ---- the job plan, without Slurm ----------------------------------------------------------------------------

def plan(study: str, argv: list[str]):
    """A study's launcher stages and output paths from reproduce.py's flags, through the study contract."""
    study = STUDIES[study]
    planned = study.parse_argv(argv)
    return study.tasks(planned), study.paths(planned)


def test_the_paper_preset_plans_one_array_per_stage_with_populations_as_tasks():
    stages, _ = plan("corti2022", ["--preset", "paper"])
    assert [s.name for s in stages] == ["train_gmp_early", "train_gmp_late", "finetune", "pies", "depth", "report"]
    assert [len(s.tasks) for s in stages] == [8, 8, 2, 2, 2, 1]  # 30 seeds in chunks of 8, for both methods
    early = stages[0].tasks
    assert early[0].command.startswith("python sup_training.py --preset paper") and "--index_end 7" in early[0].command
    assert "--index_start 24 --index_end 29" in early[3].command and early[4].command.startswith("python clr_training")
    text = describe(stages, LaunchConfig(slurm_gpus_per_task=1))
    assert "array 3 'finetune': 2 tasks, after all of 'train_gmp_late' succeed" in text and "1 GPUs" in text


def test_the_other_studies_plan_a_task_per_seed_group_or_temperature_point_and_one_report():
    stages, _ = plan("tickets", ["--preset", "paper", "--index_end", "9", "--population_size", "4",
                              "--objectives", "supervised,supcon", "--layerwise_depths", "none"])
    # 3 groups x 2 objectives
    assert [(s.name, len(s.tasks)) for s in stages] == [("imp", 6), ("retrain", 6), ("transfer", 6), ("report", 1)]
    assert stages[0].tasks[2].command.endswith("--objective supervised --stages imp --index_start 8 --index_end 9")
    stages, paths = plan("three_regime", ["--objectives", "supcon", "--output_root", "/tmp/x"])
    # the demo's 3 temperature points; the epochs knob's dense run is one task
    assert [(s.name, len(s.tasks)) for s in stages] == [("train", 1), ("prune", 3), ("retrain", 3),
                                                         ("connectivity", 3), ("cka", 3), ("plot", 1)]
    assert stages[3].tasks[1].command.endswith("--objective supcon --stages connectivity --only_temperatures 4")
    assert str(paths.root) == "/tmp/x"


def test_a_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    run_main(reproduce.main, ["--study", "tickets", "--launcher", "slurm", "--dry_run", "--output_root", str(tmp_path),
                              "--objectives", "supervised,supcon", "--layerwise_depths", "none"])
    out = capsys.readouterr().out
    assert out.startswith("4 job arrays, 7 tasks") and "array 2 'retrain': 2 tasks, after all of 'imp'" in out
    assert not any(tmp_path.iterdir())


def test_an_unreachable_cluster_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    for command, answer in (("sbatch", "exit 0"), ("sinfo", "echo 'sinfo: error: Unable to contact slurm controller' >&2; exit 1")):
        (tmp_path / command).write_text(f"#!/bin/sh\n{answer}\n")
        (tmp_path / command).chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    root = tmp_path / "out"
    err = one_line_usage_error(capsys, reproduce.main, ["--study", "tickets", "--launcher", "slurm", "--output_root",
                                                        str(root)])
    assert "Unable to contact slurm controller" in err
    assert not root.exists()


# ---- a real one-node cluster --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def slurm():
    started = subprocess.run(["bash", str(CLUSTER), "start"], capture_output=True, text=True)
    if started.returncode != 0:
        pytest.skip(f"no Slurm here: {started.stderr.strip().splitlines()[-1] if started.stderr.strip() else 'cluster.sh failed'}")
    conf = started.stdout.strip().splitlines()[-1].split("=", 1)[1]
    yield dict(os.environ, SLURM_CONF=conf)
    subprocess.run(["bash", str(CLUSTER), "stop"], capture_output=True)


STUDY = ["--study", "tickets", "--objectives", "supervised", "--layerwise_depths", "none", "--stages", "imp,retrain",
         "--index_end", "1", "--levels", "1", "--retrain_levels", "0,1", "--epochs", "3",
         "--train_subset", "768", "--lr_milestones", "--checkpoint_every", "1", "--no-curves", "--no-progress"]


def squeue(env, *flags):
    return subprocess.run(["squeue", "-h", *flags], capture_output=True, text=True, env=env).stdout.split()


def sinfo_states(env):
    return subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=env).stdout.split()


def test_a_study_through_slurm_survives_a_term_and_equals_the_local_run(slurm, tmp_path):
    local, cluster = tmp_path / "local", tmp_path / "slurm"
    subprocess.run([sys.executable, "reproduce.py", *STUDY, "--output_root", str(local)], cwd=REPO, check=True,
                   capture_output=True)
    launcher = subprocess.Popen([sys.executable, "reproduce.py", *STUDY, "--output_root", str(cluster), "--launcher",
                                 "slurm", "--slurm_cpus_per_task", str(os.cpu_count())], cwd=REPO, env=slurm,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state_dir = cluster / "models" / "digits" / "tickets" / "supervised" / ".state"
    deadline = time.time() + 120
    while time.time() < deadline and not any(state_dir.glob("*.pt")):  # the IMP task is mid-run
        assert launcher.poll() is None, launcher.communicate()
        time.sleep(0.05)
    [running] = squeue(slurm, "-t", "R", "-o", "%i")
    subprocess.run(["scancel", "--signal=TERM", running], env=slurm, check=True)
    while time.time() < deadline and running not in squeue(slurm, "-t", "PD", "-o", "%i"):
        time.sleep(0.2)
    # Slurm keeps a requeued job pending for two minutes; the test does not wait for that, only until the first run
    # has left the node and a second has passed: slurmd refuses ("Job credential revoked") a credential created in
    # the second its job's previous run was revoked
    while time.time() < deadline and set(sinfo_states(slurm)) != {"idle"}:
        time.sleep(0.2)
    time.sleep(1.5)
    subprocess.run(["scontrol", "update", f"JobId={running}", "StartTime=now"], env=slurm, check=True)
    _, err = launcher.communicate(timeout=240)
    assert launcher.returncode == 0, err
    log = (cluster / "logs" / "slurm" / f"{running}_0_log.err").read_text()
    assert "interrupted by signal 15" in log and "requeued" in log and "resuming" in log
    files = sorted(p.relative_to(local) for p in (local / "models").rglob("*.safetensors"))
    # 2 levels x 2 seeds, 2 rewind points, and per seed 5 retrained: at level 0 the ticket and the random control, at
    # level 1 the ticket, its re-initialisation and the random control
    assert len(files) == 2 * 2 + 2 + 2 * (2 + 3)
    for name in files:
        want, got = load_file(str(local / name)), load_file(str(cluster / name))
        assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want), name


def test_a_stage_script_plans_its_run_as_one_slurm_job(tmp_path, capsys):
    from common.studies.corti2022 import training

    run_main(lambda argv: training.main("supervised", argv),
             ["--preset", "demo", "--launcher", "slurm", "--dry_run", "--output_root", str(tmp_path)])
    out = capsys.readouterr().out
    assert out.startswith("1 job arrays, 1 tasks") and f"--preset demo --output_root {tmp_path}" in out
    assert not any(tmp_path.iterdir())
