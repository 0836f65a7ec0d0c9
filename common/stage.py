"""What the training stages of every study share: packing members into populations (resuming states left by another
--population_size) and training them under one progress bar, saving every finished member."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from common import checkpoint as ckpt
from common.data import Dataset
from common.engine.loop import Trainer, execution_record
from common.engine.phase import Job
from common.engine.state import saved_members
from common.log import progress
from common.paths import Paths
from common.recipe import fingerprint
from common.spec import ModelSpec
from common.zoo import refuse_mixing, save_population

log = logging.getLogger("prune")


# ---- training stages ----------------------------------------------------------------------------------

@dataclass
class Planned:
    """One population to train: its members and its resume state (found on disk, or where it will be saved)."""

    specs: list[ModelSpec]
    state_path: Path | None = None  # None: state_dir / <the job's run name>.pt


def plan_chunks(asked: list[ModelSpec], todo: list[ModelSpec], size: int, state_dir: Path,
                recipe_for: Callable[[ModelSpec], dict]) -> tuple[list[Planned], list[str]]:
    """Populations to train: first every resume state of these recipes whose members this run asks for and has
    not finished (whatever --population_size packed it), then the rest of `todo` in chunks of `size`.
    -> (populations, one line for each state left alone and why)."""
    asked_names = {spec.name: spec for spec in asked}
    todo_names = {spec.name for spec in todo}
    planned, taken, lines = [], set(), []
    for path in sorted(state_dir.glob("*.pt")) if state_dir.is_dir() else []:
        saved_fingerprint, names = saved_members(path)
        why = _left_alone(saved_fingerprint, names, asked_names, todo_names, taken, recipe_for)
        if why is None:
            planned.append(Planned([asked_names[name] for name in names], path))
            taken.update(names)
        elif why:
            lines.append(f"resume state {path} left alone: {why}")
    rest = [spec for spec in todo if spec.name not in taken]
    return planned + [Planned(rest[i:i + size]) for i in range(0, len(rest), size)], lines


def _left_alone(saved_fingerprint, names, asked, todo, taken, recipe_for) -> str | None:
    """Why a resume state is not resumed by this run ('' when it is simply another run's), or None to resume it."""
    if saved_fingerprint is None:
        return "it cannot be read; delete it to train its models from scratch"
    mine = [name for name in names if name in todo]
    if not mine:
        return ""
    foreign = [name for name in names if name not in asked]
    if foreign:
        return (f"it also holds models this run does not ask for ({', '.join(foreign)[:300]}); rerun with the "
                f"flags that asked for them to resume it, or delete it; {len(mine)} asked ones are trained from "
                f"scratch")
    if saved_fingerprint != fingerprint({"members": [recipe_for(asked[name]) for name in names]}):
        return (f"it holds {len(mine)} asked models of another recipe (fingerprint {saved_fingerprint}); rerun with "
                f"that recipe to resume it, or delete it")
    if any(name in taken for name in names):
        return "it overlaps another resume state, which is resumed instead; delete it"
    return None


def planned_jobs(paths: Paths, asked: list[ModelSpec], todo: list[ModelSpec], size: int, state_dir: Path,
                 recipe_for: Callable[[ModelSpec], dict], make_job: Callable[[list[ModelSpec]], Job],
                 make: Callable | None = None) -> list[tuple[Job, Path | None]]:
    """Every study's populations to train of `todo` (of the `asked` models): refused when they would join a
    population on disk of another recipe (common.zoo.refuse_mixing: `make(members, recipe)` the command that
    trains them with its recipe), then packed by plan_chunks (resuming a state left by another
    --population_size); -> (make_job(members), its resume state or None)."""
    refuse_mixing(paths, todo, recipe_for, make)
    planned, left_alone = plan_chunks(asked, todo, size, state_dir, recipe_for)
    for line in left_alone:
        log.warning(line)
    return [(make_job(p.specs), p.state_path) for p in planned]


def train_populations(jobs: list[tuple[Job, Path | None]], data: Dataset, device: torch.device, run,
                      paths: Paths, state_dir: Path, desc: str) -> list[dict]:
    """Train (job, resume state path or None) one after the other under one progress bar (steps of all of them,
    with an ETA) and save every finished member. A job's `prepare` (pruning, say) runs just before it trains.
    -> the members' metadata."""
    trainers = [Trainer(job, data, device, run, path or state_dir / f"{job.run_name}.pt") for job, path in jobs]
    results = []
    with progress(sum(t.total_steps() for t in trainers), desc, run.progress, unit="step") as bar:
        for trainer in trainers:
            trainer.bar = bar
            started = time.time()
            if trainer.job.prepare is not None:
                trainer.job.prepare(trainer.job)
            state = trainer.fit()
            runtime = dict(ckpt.runtime_info(device), **execution_record(run, device))
            results += save_population(paths, trainer.job, state, runtime, run.curves)
            trainer.state_path.unlink(missing_ok=True)
            log.info("trained %d models (%s) in %.1fs", len(trainer.job.specs),
                     ", ".join(s.name for s in trainer.job.specs), time.time() - started)
    return results
