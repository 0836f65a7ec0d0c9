"""Launchers: a study's work as stages of tasks (`Stage`, `Task`), run here one after the other (`--launcher
local`) or spread over a Slurm cluster through submitit (`--launcher slurm`): every stage is one job array whose
tasks are the stage's populations, and each stage waits for the whole previous one (afterok dependencies).

Preemption and time limits: Slurm warns a job with SIGUSR2 before its time limit (submitit asks for it) and with
SIGTERM when it is preempted or cancelled with --signal=TERM; the training loop saves its state at the next batch
boundary on either, the task asks Slurm to requeue itself, and the requeued task resumes from that state, bit for
bit. A failed task is reported with its log and the command that reruns it; finished work is never redone (every
task skips what is on disk).
"""
from __future__ import annotations

import logging
import pickle
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from common.config import help_field
from common.errors import Preempted, UsageError

log = logging.getLogger("prune")
LAUNCHERS = ("local", "slurm")


@dataclass(frozen=True)
class LaunchConfig:
    """Where a study's tasks run (reproduce.py)."""

    launcher: str = help_field("local", "local (here, one task after the other) or slurm (a job array per stage "
                                        "through submitit)", choices=LAUNCHERS)
    dry_run: bool = help_field(False, "print the jobs --launcher slurm would submit (stages, array sizes, "
                                      "dependencies, resources) and exit")
    slurm_partition: str = help_field("", "sbatch --partition (default: the cluster's)")
    slurm_time: int = help_field(240, "sbatch --time in minutes per task (a task that reaches it is requeued)")
    slurm_gpus_per_task: int = help_field(0, "GPUs per task (sbatch --gpus-per-node, one task per node)")
    slurm_cpus_per_task: int = help_field(2, "sbatch --cpus-per-task")
    slurm_array_parallelism: int = help_field(64, "tasks of one array running at once")
    slurm_account: str = help_field("", "sbatch --account")
    slurm_qos: str = help_field("", "sbatch --qos")
    slurm_additional: str = help_field("", "any other sbatch options as key=value pairs separated by commas, e.g. "
                                           "'constraint=a100,mem=32G'")


@dataclass
class Task:
    """One population's work: `function(*args)`, and the command a person types to run it."""

    label: str
    function: Callable
    args: tuple
    command: str


@dataclass
class Stage:
    name: str
    tasks: list[Task] = field(default_factory=list)


def command_line(script: str, argv: list[str]) -> str:
    return "python " + " ".join(shlex.quote(part) for part in [script, *argv])


def run_local(stages: list[Stage]) -> list:
    results = []
    for stage in stages:
        for task in stage.tasks:
            log.info("stage %s: %s", stage.name, task.label)
            result = task.function(*task.args)
            results += result if isinstance(result, list) else []
    return results


def describe(stages: list[Stage], launch: LaunchConfig) -> str:
    """The job plan as text: one job array per stage, its tasks, dependencies and resources."""
    resources = (f"{launch.slurm_cpus_per_task} CPUs, {launch.slurm_gpus_per_task} GPUs, {launch.slurm_time} min "
                 f"per task; partition {launch.slurm_partition or '(default)'}; at most "
                 f"{launch.slurm_array_parallelism} tasks of an array at once")
    lines = [f"{len(stages)} job arrays, {sum(len(s.tasks) for s in stages)} tasks ({resources}):"]
    for i, stage in enumerate(stages):
        after = f"after all of '{stages[i - 1].name}' succeed" if i else "no dependency"
        lines.append(f"  array {i + 1} '{stage.name}': {len(stage.tasks)} tasks, {after}")
        lines += [f"    {task.label}: {task.command}" for task in stage.tasks]
    return "\n".join(lines)


class Requeueable:
    """What submitit runs: the task's function; on a Preempted stop (SIGTERM or Slurm's SIGUSR2 before the time
    limit, state saved) it asks Slurm to requeue this job; `checkpoint` lets submitit requeue it when the signal
    arrives outside training."""

    def __init__(self, task: Task):
        self.task = task

    def __call__(self):
        import submitit  # optional, and only a Slurm run needs it

        try:
            return self.task.function(*self.task.args)
        except Preempted as stop:
            log.warning("%s: %s; requeued", self.task.label, stop)
            submitit.JobEnvironment()._requeue(countdown=1)  # `scontrol requeue <this job>`
            sys.exit(0)  # no result file: the job is not over (submitit's own requeue exits the same way)

    def checkpoint(self, *args, **kwargs):
        import submitit  # optional, and only a Slurm run needs it

        return submitit.helpers.DelayedSubmission(self)


def run_slurm(stages: list[Stage], launch: LaunchConfig, folder: Path, poll_seconds: float = 2.0) -> list:
    """Submit every stage as a job array depending on the previous one, wait for all, report failures."""
    import submitit  # optional, and only a Slurm run needs it

    logging.getLogger("submitit").setLevel(logging.ERROR)  # without accounting, sacct's errors are noise
    folder.mkdir(parents=True, exist_ok=True)
    previous, submitted = [], []
    for stage in stages:
        executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=10)
        parameters = dict(time=launch.slurm_time, cpus_per_task=launch.slurm_cpus_per_task,
                          array_parallelism=launch.slurm_array_parallelism, job_name=f"prune_{stage.name}",
                          signal_delay_s=90, additional_parameters=_additional(launch))
        if launch.slurm_partition:
            parameters["partition"] = launch.slurm_partition
        if launch.slurm_gpus_per_task:
            parameters["gpus_per_node"] = launch.slurm_gpus_per_task
        if previous:
            parameters["dependency"] = "afterok:" + ":".join(job.job_id for job in previous)
        executor.update_parameters(**parameters)
        with executor.batch():
            jobs = [executor.submit(Requeueable(task)) for task in stage.tasks]
        log.info("stage %s: job array of %d tasks (%s)", stage.name, len(jobs), ", ".join(j.job_id for j in jobs))
        submitted += [(stage, task, job) for task, job in zip(stage.tasks, jobs)]
        previous = jobs
    return _wait(submitted, poll_seconds)


def _additional(launch: LaunchConfig) -> dict:
    extra = {}
    for pair in filter(None, launch.slurm_additional.split(",")):
        key, _, value = pair.partition("=")
        extra[key.strip()] = value.strip() or None
    if launch.slurm_account:
        extra["account"] = launch.slurm_account
    if launch.slurm_qos:
        extra["qos"] = launch.slurm_qos
    return extra


def _wait(submitted: list, poll_seconds: float) -> list:
    """Wait for every job; a failed one is one line with its log and command, and what depended on it is
    cancelled. -> the finished tasks' results."""
    results, pending = [], list(submitted)
    while pending:
        time.sleep(poll_seconds)
        still = []
        for stage, task, job in pending:
            if not job.paths.result_pickle.exists():
                still.append((stage, task, job))
                continue
            outcome, value = _outcome(job)
            if outcome == "success":
                results += value if isinstance(value, list) else []
                continue
            waiting = [j.job_id for _, _, j in pending if not j.paths.result_pickle.exists() and j is not job]
            if waiting:
                subprocess.run(["scancel", *waiting], check=False, capture_output=True)
            raise UsageError(f"Slurm task '{task.label}' ({stage.name}, job {job.job_id}) failed: {value}; log "
                             f"{job.paths.stderr}; rerun it with `{task.command}` (finished work is skipped), then "
                             f"rerun this command for the rest")
        pending = still
    return results


def _outcome(job) -> tuple[str, object]:
    """('success', result) or ('error', the error's last line) from the job's result file."""
    with open(job.paths.result_pickle, "rb") as handle:
        outcome, value = pickle.load(handle)
    if outcome == "success":
        return outcome, value
    return outcome, str(value).strip().splitlines()[-1] if str(value).strip() else "unknown error"


def launch_stages(stages: list[Stage], launch: LaunchConfig, folder: Path) -> list:
    if launch.dry_run:
        print(describe(stages, launch))
        return []
    if launch.launcher == "local":
        return run_local(stages)
    return run_slurm(stages, launch, folder)
