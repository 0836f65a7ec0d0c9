"""`TrainState`: everything a population's training needs to continue bit for bit after a stop — weights and
BatchNorm statistics, masks, optimizer and scheduler state, every member's generator, the phase, epoch and
position inside the epoch, the history, which members failed, the objective's own state and rewind snapshots.

Saved with `torch.save` of tensors and plain containers (loaded with weights_only=True), atomically."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from common import checkpoint as ckpt
from common.engine.phase import Job
from common.engine.population import Population
from common.pruning.masks import Masks
from common.errors import CheckpointError


@dataclass
class EpochCursor:
    """Where an epoch stands: its data order (one permutation per member), the next batch, running sums."""

    order: torch.Tensor  # [P, N]
    batch: int
    loss_sum: torch.Tensor  # [P]
    correct: torch.Tensor  # [P]
    seconds: float = 0.0

    @classmethod
    def start(cls, generators: list[torch.Generator], n_train: int) -> "EpochCursor":
        order = torch.stack([torch.randperm(n_train, generator=g) for g in generators])
        members = len(generators)
        return cls(order, 0, torch.zeros(members), torch.zeros(members))

    def to_dict(self) -> dict:
        return dict(order=self.order, batch=self.batch, loss_sum=self.loss_sum.cpu(), correct=self.correct.cpu(),
                    seconds=self.seconds)


@dataclass
class TrainState:
    population: Population
    generators: list[torch.Generator]
    masks: Masks
    phase: int = 0
    epoch: int = 0
    optimizer: torch.optim.Optimizer | None = None
    schedulers: list = field(default_factory=list)
    cursor: EpochCursor | None = None
    history: list[dict] = field(default_factory=list)
    alive: list[bool] = field(default_factory=list)
    failed_states: dict = field(default_factory=dict)  # member name -> its last good state dict
    objective_state: dict = field(default_factory=dict)
    snapshots: dict = field(default_factory=dict)  # '<phase>@<step>' -> rewind point (hooks.Snapshot)
    records: dict = field(default_factory=dict)  # table name -> rows a hook adds each epoch (natural sparsity …)
    saved_optimizer: dict | None = None  # loaded optimizer/scheduler state, consumed when the phase starts

    @classmethod
    def fresh(cls, job: Job, device: torch.device) -> "TrainState":
        population = Population(job.make_networks(), device)
        masks = Masks.from_state_dict(job.initial_masks or {}, device)
        masks.apply_(population.params)
        generators = [torch.Generator().manual_seed(spec.seed) for spec in job.specs]
        return cls(population, generators, masks, alive=[True] * population.size)

    @classmethod
    def rewound(cls, job: Job, points: list[dict], masks: Masks, device: torch.device) -> "TrainState":
        """A state that continues from the members' rewind points (`points[i]`: member i's, as hooks.Snapshot keeps
        them, unstacked) under `masks`: weights and buffers of the rewind point with pruned entries zeroed, each
        member's generator and data order, the phase, epoch and batch where the point was taken, the objective's own
        state there (NPID's memory bank); no optimizer state (fresh momentum, the schedule at that epoch) and no
        history."""
        where = {(p["phase"], p["epoch"], p["batch"]) for p in points}
        if len(where) != 1:
            raise ValueError(f"members rewind to different points {sorted(where)}: rewind each population to one")
        phase, epoch, batch = where.pop()
        population = Population(job.make_networks(), device)
        for name, tensor in {**population.params, **population.buffers}.items():
            tensor.data.copy_(torch.stack([p["tensors"][name] for p in points]))
        masks.apply_(population.params)
        generators = []
        for point in points:
            generators.append(torch.Generator())
            generators[-1].set_state(point["generators"])
        members = len(points)
        cursor = EpochCursor(torch.stack([p["order"] for p in points]), batch, torch.zeros(members),
                             torch.zeros(members))
        objective = {n: torch.stack([p["objective"][n] for p in points]) for n in points[0].get("objective", {})}
        return cls(population, generators, masks, phase=phase, epoch=epoch, cursor=cursor, alive=[True] * members,
                   objective_state={job.phases[phase].name: objective} if objective else {})

    def member_snapshot(self, key: str, index: int) -> dict:
        """Member `index`'s part of the rewind point `key` (what `rewound` takes)."""
        point = self.snapshots[key]
        return dict(point, tensors={n: t[index] for n, t in point["tensors"].items()},
                    generators=point["generators"][index], order=point["order"][index],
                    objective={n: t[index] for n, t in point.get("objective", {}).items()})

    def next_phase(self) -> None:
        self.phase, self.epoch, self.optimizer, self.schedulers, self.saved_optimizer = self.phase + 1, 0, None, [], None

    # ---- saving ------------------------------------------------------------------------------------
    def save(self, path: Path, job: Job) -> None:
        pop = self.population
        optimizer = None if self.optimizer is None else _cpu(self.optimizer.state_dict())
        ckpt.save_state(path, dict(
            fingerprint=job.fingerprint, specs=[spec.name for spec in job.specs],
            params={k: v.detach().cpu() for k, v in pop.params.items()},
            buffers={k: v.cpu() for k, v in pop.buffers.items()},
            masks=self.masks.state_dict(), generators=[g.get_state() for g in self.generators],
            optimizer=optimizer, schedulers=None if optimizer is None else [s.state_dict() for s in self.schedulers],
            phase=self.phase, epoch=self.epoch, history=self.history, alive=self.alive,
            failed_states=self.failed_states, cursor=None if self.cursor is None else self.cursor.to_dict(),
            objective_state=self.objective_state, snapshots=self.snapshots, records=self.records))

    @classmethod
    def load(cls, path: Path, job: Job, device: torch.device) -> "TrainState":
        saved = ckpt.load_state(path)
        if saved.get("fingerprint") != job.fingerprint or saved.get("specs") != [s.name for s in job.specs]:
            raise CheckpointError(f"resume state {path} belongs to another configuration: delete it to start "
                                       f"that population from scratch")
        population = Population(job.make_networks(), device)
        for name, param in population.params.items():
            param.data.copy_(saved["params"][name])
        for name, buffer in population.buffers.items():
            buffer.copy_(saved["buffers"][name])
        generators = []
        for generator_state in saved["generators"]:
            generators.append(torch.Generator())
            generators[-1].set_state(generator_state)
        cursor = saved.get("cursor")
        return cls(population, generators, Masks.from_state_dict(saved["masks"], device), phase=saved["phase"],
                   epoch=saved["epoch"], cursor=None if cursor is None else EpochCursor(**cursor),
                   history=saved["history"], alive=saved["alive"], failed_states=saved.get("failed_states", {}),
                   objective_state=saved.get("objective_state", {}), snapshots=saved.get("snapshots", {}),
                   records=saved.get("records", {}),
                   saved_optimizer=None if saved["optimizer"] is None else dict(
                       optimizer=saved["optimizer"], schedulers=saved["schedulers"]))

    def restore_optimizer(self) -> None:
        """Load the saved optimizer and scheduler state into the ones the resumed phase just built. A state that
        starts mid-phase without one (a rewound state) gets fresh momentum and the schedule stepped to its epoch,
        as open_lth's training from a rewind step."""
        if self.saved_optimizer is None:
            with warnings.catch_warnings():  # stepping a scheduler before any optimizer step is the point here
                warnings.simplefilter("ignore", UserWarning)
                for _ in range(self.epoch):
                    for scheduler in self.schedulers:
                        scheduler.step()
            return
        self.optimizer.load_state_dict(self.saved_optimizer["optimizer"])
        for scheduler, scheduler_state in zip(self.schedulers, self.saved_optimizer["schedulers"]):
            scheduler.load_state_dict(scheduler_state)
        self.saved_optimizer = None


def saved_members(path: Path) -> tuple[str | None, list[str]]:
    """(recipe fingerprint, member names) of a resume state, read without loading its tensors into memory;
    (None, []) when it cannot be read."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return str(saved["fingerprint"]), [str(name) for name in saved["specs"]]
    except Exception:  # noqa: BLE001 - torch raises many kinds for a truncated or foreign file
        return None, []


def _cpu(obj):
    if torch.is_tensor(obj):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_cpu(v) for v in obj]
    return obj
