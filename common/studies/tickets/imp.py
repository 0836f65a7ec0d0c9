"""Iterative magnitude pruning with late rewinding (Han et al.; Frankle et al. 2019, as open_lth's lottery runner):
level 0 trains the dense network on the pruning objective and keeps every member's rewind point; level L prunes
the remaining weights of level L-1's trained network by global magnitude over the pool (every conv weight of the
encoder: never the classifier, the projection head, BatchNorm or biases) down to density (1 - rate)^L, restarts
the surviving weights from the rewind point, and trains to the end with the schedule and data position of that
point. Every level is a finished model (weights, masks and a per-layer sparsity report in its metadata), so a rerun
resumes at the first unfinished level, and inside a level at its saved state.

Fidelity: open_lth (pruning/sparse_global.py) prunes n = ceil(rate x remaining) weights per level plus one more
and any ties: it sorts the remaining magnitudes, takes the threshold at index n and keeps only the weights strictly
above it, so at least n + 1 go; its density drifts below (1 - rate)^L (a pool of 62,352 weights keeps 711 at
level 20 where 0.8^20 x 62,352 rounds to 719). Each level here keeps exactly round((1 - rate)^L x pool) weights
(ties broken by position), the density the paper plots. The optimizer restarts at the rewind point with fresh
momentum (open_lth's), the learning rate at the schedule's value there.

Layerwise tickets (Figure 4) prune only the first N or the last N conv layers (forward order; a block's shortcut
after its convs). Pruning more layers prunes more weights, so a depth comparison at one density confounds depth
with the amount pruned; here a layerwise level L prunes round((1 - (1 - rate)^L) x B) weights, B the smaller
of its layers' and the other layers' weight counts: the first N and the last (pool - N) layers of one split prune
exactly as many weights at every level (for the smaller side B is its own size: its density is (1 - rate)^L).
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
    """A layerwise ticket's name says which layers it prunes ('3': the first 3, 'last2': the last 2); the dense
    level is the same for every choice."""
    if not level:
        return ()
    if cfg.prune_first_n_layers:
        return (("layers", cfg.prune_first_n_layers),)
    return (("layers", f"last{cfg.prune_last_n_layers}"),) if cfg.prune_last_n_layers else ()


def prunable_pool(cfg: TicketsConfig, template) -> tuple[str, ...]:
    """The conv weights IMP ranks: all of the encoder's, or its first --prune_first_n_layers or last
    --prune_last_n_layers (layerwise tickets)."""
    pool = tuple(POOLS[POOL](template))
    first, last = cfg.prune_first_n_layers, cfg.prune_last_n_layers
    if first and last:
        raise UsageError(f"--prune_first_n_layers {first} --prune_last_n_layers {last}: choose one side")
    if max(first, last) > len(pool):
        flag = "--prune_first_n_layers" if first else "--prune_last_n_layers"
        raise UsageError(f"{flag} {max(first, last)}: {cfg.arch} has {len(pool)} conv layers")
    return pool[:first] if first else pool[len(pool) - last:] if last else pool


def budget_scale(pool: tuple[str, ...], sizes: dict[str, int]) -> float:
    """The fraction of (1 - density) a level prunes of `pool` (a part of the encoder's conv weights, whose sizes
    are `sizes`): 1 for the whole encoder; min(own, other) / own for a layerwise pool, so that the two sides of a
    split prune as many weights."""
    own = sum(sizes[n] for n in pool)
    other = sum(sizes.values()) - own
    return min(own, other) / own if other else 1.0


def balanced_split(arch: str) -> int:
    """The N whose first N conv layers hold as many weights as the remaining ones (the closest split): the
    layerwise pair whose two sides prune at about the same density too."""
    sizes = conv_sizes(arch)
    counts = list(sizes.values())
    return min(range(1, len(counts)), key=lambda n: abs(sum(counts[:n]) - sum(counts[n:])))


def conv_sizes(arch: str) -> dict[str, int]:
    """{name: weights} of the encoder's conv layers, in forward order."""
    network = build_network(arch, "supervised")
    params = dict(network.named_parameters())
    return {name: params[name].numel() for name in POOLS[POOL](network)}


def imp_masks(weights: dict[str, torch.Tensor], previous: Masks | None, level: int, rate: float,
              scale: float = 1.0) -> Masks:
    """Level `level`'s masks from the previous level's trained weights {name: [P, ...]}: global magnitude over the
    pool, entries `previous` pruned ranked first, so that masks only shrink and exactly round(sparsity x pool)
    weights are pruned, sparsity = (1 - (1 - rate)^level) x scale (budget_scale: 1 but for layerwise pools)."""
    members = next(iter(weights.values())).shape[0]
    return prune_once(weights, list(weights), [(1.0 - level_density(rate, level)) * scale] * members, "global",
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
        self.scale = budget_scale(self.pool, conv_sizes(cfg.arch))
        self.image_size = image_size
        self.steps_per_epoch = math.ceil(n_train / cfg.batch_size)
        self.rewind_step = cfg.rewind_step(self.steps_per_epoch)
        self.key = rewind_key(self.phase().name, self.rewind_step)

    @staticmethod
    def full_pool(cfg: TicketsConfig) -> tuple[str, ...]:
        """Every conv weight of the encoder, whatever a layerwise flag says."""
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
        return imp_masks(weights, held, level, self.cfg.pruning_rate, self.scale)

    def rewound(self, level: int, job: Job, device: torch.device) -> TrainState:
        """Level `level`'s starting state: the rewind points under the level's masks."""
        seeds = [spec.seed for spec in job.specs]
        masks = Masks.from_state_dict(self.level_masks(level, seeds).state_dict(), device)
        return TrainState.rewound(job, [self.rewind_point(seed) for seed in seeds], masks, device)
