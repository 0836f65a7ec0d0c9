"""Iterative magnitude pruning with late rewinding (Han et al.; Frankle et al. 2019, as open_lth's lottery runner):
level 0 trains the dense network on the pruning objective and keeps every member's rewind point; level L prunes
the remaining weights of level L-1's trained network by global magnitude over the pool (every conv weight of the
encoder: never the classifier, the projection head, BatchNorm or biases) down to density (1 - rate)^L, restarts
the surviving weights from the rewind point, and trains to the end with the schedule and data position of that
point. Every level is a finished model (weights, masks and a per-layer sparsity report in its metadata), so a rerun
resumes at the first unfinished level, and inside a level at its saved state.

Fidelity: open_lth prunes ceil(0.2 x remaining) per level, whose density drifts from 0.8^L; each level here keeps
exactly round(0.8^L x pool) weights (ties broken by position), the density the paper plots. The optimizer restarts
at the rewind point with fresh momentum (open_lth's), the learning rate at the schedule's value there.
"""
from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import torch

from common.errors import CheckpointError, UsageError
from common.engine.hooks import NaturalSparsity
from common.engine.phase import Job
from common.engine.state import TrainState
from common.models import build_network, seeded_network
from common.pruning.criteria import prune_once
from common.pruning.masks import Masks
from common.pruning.pools import POOLS
from common.spec import ModelSpec
from common.stage import planned_jobs
from common.studies.tickets.commands import retrain_command
from common.studies.tickets.config import LABEL_FRACTION, STUDY, TicketsConfig, labels_tag, level_density
from common.studies.tickets.objectives import PHASES
from common.zoo import finished_or_conflict, load_member, load_rewind_point

POOL = "encoder_convs"  # a key of common.pruning.pools.POOLS


def trunk_spec(cfg: TicketsConfig, level: int, seed: int) -> ModelSpec:
    """The network IMP trains at `level` for one seed, on the pruning objective."""
    return ModelSpec(cfg.objective, cfg.arch, cfg.dataset, "imp",
                     1.0 - level_density(cfg.pruning_rate, level), seed, study=STUDY,
                     knobs=(("level", level), ("rewind", cfg.rewind), *labels_knob(cfg), *layers_knob(cfg, level)))


def labels_knob(cfg: TicketsConfig) -> tuple:
    """The labelled fraction an S4L or few-label network was pruned with is part of its name."""
    return (("labels", labels_tag(cfg)),) if cfg.objective in LABEL_FRACTION else ()


def layers_knob(cfg: TicketsConfig, level: int) -> tuple:
    """A layerwise ticket's name says how many layers it prunes; the dense level is the same for every depth."""
    return (("layers", cfg.prune_first_n_layers),) if cfg.prune_first_n_layers and level else ()


def prunable_pool(cfg: TicketsConfig, template) -> tuple[str, ...]:
    """The conv weights IMP ranks: all of the encoder's, or its first --prune_first_n_layers (layerwise tickets)."""
    pool = tuple(POOLS[POOL](template))
    if cfg.prune_first_n_layers > len(pool):
        raise UsageError(f"--prune_first_n_layers {cfg.prune_first_n_layers}: {cfg.arch} has {len(pool)} conv layers")
    return pool[:cfg.prune_first_n_layers] if cfg.prune_first_n_layers else pool


def imp_masks(weights: dict[str, torch.Tensor], previous: Masks | None, level: int, rate: float) -> Masks:
    """Level `level`'s masks from the previous level's trained weights {name: [P, ...]}: global magnitude over the
    pool, entries `previous` pruned ranked first, so that masks only shrink and exactly round(density x pool)
    weights are kept, density = (1 - rate)^level."""
    members = next(iter(weights.values())).shape[0]
    return prune_once(weights, list(weights), [1.0 - level_density(rate, level)] * members, "global",
                      list(range(members)), masks=previous)


def rewind_key(phase_name: str, step: int) -> str:
    return f"{phase_name}@{step}"


class Trunk:
    """The IMP levels of one pruning objective for a run's seeds, as jobs for common.stage.train_populations."""

    def __init__(self, cfg: TicketsConfig, paths, n_train: int, num_classes: int, image_size: int):
        self.cfg, self.paths, self.num_classes = cfg, paths, num_classes
        self.method = cfg.objective  # the network it trains: the objective's heads (common.engine.objectives)
        template = build_network(cfg.arch, self.method, num_classes, cfg.projection_dim)
        self.names = [n for n, _ in template.named_parameters()]
        self.pool = prunable_pool(cfg, template)
        self.image_size = image_size
        self.steps_per_epoch = math.ceil(n_train / cfg.batch_size)
        self.rewind_step = cfg.rewind_step(self.steps_per_epoch)
        self.key = rewind_key(self.phase().name, self.rewind_step)

    @staticmethod
    def full_pool(cfg: TicketsConfig) -> tuple[str, ...]:
        """Every conv weight of the encoder, whatever --prune_first_n_layers says."""
        return tuple(POOLS[POOL](build_network(cfg.arch, "supervised")))

    def phase(self, **extra):
        return PHASES[self.cfg.objective](self.cfg, self.names, self.image_size, **extra)

    def jobs(self, seeds: list[int], levels: int, population_size: int, state_dir) -> list[tuple[Job, Path | None]]:
        """(job, resume state) per level and population of --population_size seeds, in level order (each level
        starts from the one before); finished levels are skipped (common.stage.planned_jobs)."""
        jobs = []
        for level in range(levels + 1):
            recipe = self.cfg.recipe(pruned=level > 0)
            asked = [trunk_spec(self.cfg, level, seed) for seed in seeds]
            todo = [s for s in asked if not finished_or_conflict(self.paths, s, recipe, retrain=retrain_command)]
            jobs += planned_jobs(self.paths, asked, todo, population_size, state_dir, lambda spec, r=recipe: r,
                                 partial(self.level_job, level, recipe), self.command)
        return jobs

    def level_job(self, level: int, recipe: dict, specs: list[ModelSpec]) -> Job:
        if level == 0:
            # over every conv layer: level 0 is shared by the layerwise runs of every depth
            natural = NaturalSparsity(self.full_pool(self.cfg))
            phase, start = self.phase(snapshot_steps=(self.rewind_step,), hooks=(natural,)), None
        else:
            phase, start = self.phase(), partial(self.rewound, level)
        return Job(specs=specs, phases=[phase], config=self.cfg.to_dict(), recipes=[recipe] * len(specs),
                   make_networks=partial(self.networks, [s.seed for s in specs]), start=start)

    def command(self, members: list[ModelSpec], recipe: dict) -> str:
        """The command that makes `members` (of one population) with `recipe`."""
        return retrain_command(members[0], recipe, self.paths, [s.seed for s in members])

    def networks(self, seeds: list[int]) -> list:
        return [seeded_network(self.cfg.arch, self.method, self.num_classes, self.cfg.projection_dim, seed)
                for seed in seeds]

    def rewind_point(self, seed: int) -> dict:
        """The seed's rewind point, kept by its dense (level 0) training."""
        path = self.paths.rewind_point(trunk_spec(self.cfg, 0, seed), self.key)
        if not path.is_file():
            dense = trunk_spec(self.cfg, 0, seed)
            raise CheckpointError(f"the rewind point {path} is missing: move {self.paths.checkpoint(dense).parent}/"
                                  f"{dense.name}* away and rerun to train level 0 again")
        return load_rewind_point(path)

    def level_masks(self, level: int, seeds: list[int]) -> Masks:
        """IMP's masks at `level` (>= 1) for `seeds`, from level - 1's trained models on disk."""
        previous = [load_member(self.paths, trunk_spec(self.cfg, level - 1, seed))[:2] for seed in seeds]
        weights = {n: torch.stack([state[n] for state, _ in previous]) for n in self.pool}
        held = None if level == 1 else Masks({n: torch.stack([masks[n] for _, masks in previous]) for n in self.pool})
        return imp_masks(weights, held, level, self.cfg.pruning_rate)

    def rewound(self, level: int, job: Job, device: torch.device) -> TrainState:
        """Level `level`'s starting state: the rewind points under the level's masks."""
        seeds = [spec.seed for spec in job.specs]
        masks = Masks.from_state_dict(self.level_masks(level, seeds).state_dict(), device)
        return TrainState.rewound(job, [self.rewind_point(seed) for seed in seeds], masks, device)
