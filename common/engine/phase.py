"""What the engine runs: a `Job` (the members, their initial networks and the phases to train them through) and
its `Phase`s (one optimizer run each: objective, schedule, trainable parameters, GMP window)."""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Callable

from common.engine.objectives import Objective
from common.pruning.gmp import GMPWindow
from common.recipe import fingerprint


@dataclass(frozen=True)
class Phase:
    name: str
    objective: Objective
    epochs: int
    batch_size: int
    learning_rate: float
    momentum: float
    weight_decay: float
    trainable: tuple  # names of the parameters this phase optimises
    augment: object  # SupervisedAugment | ContrastiveAugment
    optimizer: str = "sgd"  # a key of engine.optimizers.OPTIMIZERS
    nesterov: bool = False
    sam_rho: float = 0.05  # SAM's neighbourhood radius (optimizer 'sam')
    sam_adaptive: bool = False  # ASAM's scale-invariant neighbourhood
    drop_last: bool = False  # drop each epoch's last incomplete batch (a fixed iteration budget per batch size)
    milestones: tuple = ()
    gamma: float = 0.1
    cosine: bool = False
    eta_min: float = 0.0
    prune_names: tuple = ()  # GMP pool, every tensor pruned to the same sparsity (the authors' layer-wise GMP)
    gmp: GMPWindow | None = None
    evaluate: bool = True
    snapshot_steps: tuple = ()  # steps whose rewind points are kept in the state (hooks.Snapshot)
    hooks: tuple = ()  # more hooks of this phase (common.engine.hooks), after the snapshot and GMP ones

    def steps_per_epoch(self, n_train: int) -> int:
        return n_train // self.batch_size if self.drop_last else math.ceil(n_train / self.batch_size)


@dataclass
class Job:
    """Members to train together: their identities, initial networks, targets and phases."""

    specs: list  # common.spec.ModelSpec of each member (the engine needs their names and seeds only)
    phases: list[Phase]
    make_networks: Callable[[], list]  # -> list[Network], called only when not resuming
    config: dict  # the whole config as run, recorded in every checkpoint
    recipes: list[dict]  # per member: what shapes it (common.recipe), its identity
    final_sparsity: list[float] = field(default_factory=list)  # GMP target per member
    initial_masks: dict | None = None  # stacked masks held from the start (finetuning, a ticket's level)
    member_meta: list[dict] = field(default_factory=list)
    prepare: Callable[["Job"], None] | None = None  # fills initial_masks/member_meta just before training
    start: Callable | None = None  # (job, device) -> TrainState to start from instead of a fresh one (a rewind)

    @property
    def fingerprint(self) -> str:
        """Of the members' recipes: a resume state is resumed only under the recipes it was started with."""
        return fingerprint({"members": self.recipes})

    @property
    def run_name(self) -> str:
        """Names the resume state: the pruning, the recipe and exactly these members."""
        seeds = "-".join(str(s.seed) for s in self.specs)
        key = hashlib.sha1("|".join(s.name for s in self.specs).encode()).hexdigest()[:10]
        return f"{self.specs[0].pruning}_{self.fingerprint}_{key}_seeds{seeds[:40]}"
