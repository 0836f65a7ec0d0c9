"""Ticket evaluation: every level's mask re-trained on labels with one recipe, whatever found it.

Variants (mask source x initial weights), each at the level's density:
  imp / rewind             the winning ticket: IMP's mask on the rewind point's weights (Frankle et al.)
  imp / reinit             IMP's mask on a fresh random initialisation (Liu et al.)
  random / reinit          a random global mask
  random_natural / reinit  a random mask corrected for natural sparsity: the weights of the trained dense network
                           below --natural_zero_eps pruned first, the rest at random (Caron et al. §4.3)
Caron et al.'s random baselines are randomly initialised ("the remaining non-masked weights are randomly
initialized"), so they differ from imp / reinit by the mask alone. The dense level 0 is re-trained from the rewind
point and from a re-initialisation. The head is never pruned; a pruning objective without a label head (SupCon)
leaves its classifier at its initialisation, so its tickets start with a fresh head.

Every ticket runs the label recipe from its first step (the rewind point's schedule position belongs to the
pruning objective's run), so every mask source gets the same budget; for the supervised objective the winning
ticket thus trains `rewind` steps longer than its IMP level did. Members of one level (seeds x variants) train
as one population; each member's data order is its seed's, the same for every variant.
"""
from __future__ import annotations

from pathlib import Path

import torch

from common.engine.phase import Job
from common.models import build_network, seeded_network
from common.pruning.criteria import prune_once
from common.spec import ModelSpec
from common.studies.tickets.config import STUDY, TicketsConfig, level_density, objective_tag
from common.studies.tickets.imp import Trunk, layers_knob, trunk_spec
from common.studies.tickets.objectives import label_phase
from common.stage import planned_jobs
from common.studies.tickets.commands import retrain_command
from common.zoo import finished_or_conflict, load_member

VARIANTS = (("imp", "rewind"), ("imp", "reinit"), ("random", "reinit"), ("random_natural", "reinit"))
REINIT_OFFSET = 10_000  # a re-initialised member draws its weights from seed + this
MASK_OFFSET = 20_000  # a random mask is drawn from seed + this


def ticket_spec(cfg: TicketsConfig, level: int, seed: int, source: str, init: str) -> ModelSpec:
    return ModelSpec("supervised", cfg.arch, cfg.dataset, source, 1.0 - level_density(cfg.pruning_rate, level), seed,
                     study=STUDY, knobs=(("objective", objective_tag(cfg)), ("level", level), ("rewind", cfg.rewind),
                                         ("init", init), *layers_knob(cfg, level)))


def variants(level: int, layerwise: bool = False) -> tuple:
    """At level 0 every mask is dense: only the two initialisations differ. A layerwise ticket (Figure 4) is
    compared with the label ticket of the same depth only: its random controls are left out."""
    return VARIANTS if level and not layerwise else tuple(v for v in VARIANTS if v[0] == "imp")


class Tickets:
    """The re-training jobs of one pruning objective's levels (its Trunk on disk)."""

    def __init__(self, trunk: Trunk, num_classes: int):
        self.trunk, self.cfg, self.paths, self.num_classes = trunk, trunk.cfg, trunk.paths, num_classes
        template = build_network(self.cfg.arch, "supervised", num_classes)
        self.names = [n for n, _ in template.named_parameters()]
        self.shapes = {n: p.shape for n, p in template.named_parameters() if n in trunk.pool}

    def jobs(self, seeds: list[int], levels: int, population_size: int, state_dir) -> list[tuple[Job, Path | None]]:
        """(job, resume state) per level and population of --population_size tickets (common.stage.planned_jobs)."""
        phase = label_phase(self.cfg, self.names, self.trunk.image_size)
        jobs = []
        for level in range(levels + 1):
            members = [ticket_spec(self.cfg, level, seed, source, init) for seed in seeds
                       for source, init in variants(level, self.cfg.prune_first_n_layers > 0)]
            todo = [s for s in members if not finished_or_conflict(self.paths, s, self.recipe(s),
                                                                   retrain=retrain_command)]
            jobs += planned_jobs(
                self.paths, members, todo, population_size, state_dir, self.recipe,
                lambda chunk, level=level: Job(specs=chunk, phases=[phase], config=self.cfg.to_dict(),
                                               recipes=[self.recipe(s) for s in chunk],
                                               make_networks=lambda chunk=chunk: [self.network(s) for s in chunk],
                                               prepare=lambda job, level=level: self.prepare(job, level)),
                self.trunk.command)
        return jobs

    def recipe(self, spec: ModelSpec) -> dict:
        return self.cfg.recipe(pruned=dict(spec.knobs)["level"] > 0, natural=spec.pruning == "random_natural")

    def network(self, spec: ModelSpec):
        """The label network a ticket starts from: the rewind point's weights, or a fresh initialisation."""
        init = dict(spec.knobs)["init"]
        if init == "reinit":
            return seeded_network(self.cfg.arch, "supervised", self.num_classes, 128, spec.seed + REINIT_OFFSET)
        network = build_network(self.cfg.arch, "supervised", self.num_classes)
        point = self.trunk.rewind_point(spec.seed)["tensors"]
        network.load_state_dict({k: point[k] for k in network.state_dict()}, strict=True)
        return network

    def prepare(self, job: Job, level: int) -> None:
        """Each member's mask (IMP's from disk, or a random draw), stacked as the job's initial masks."""
        if level == 0:
            return
        masks = [self.mask(spec, level) for spec in job.specs]
        job.initial_masks = {n: torch.cat([m[n] for m in masks]) for n in self.trunk.pool}

    def mask(self, spec: ModelSpec, level: int) -> dict[str, torch.Tensor]:
        """{name: [1, ...]} keep-mask of one ticket."""
        pool, sparsity, seed = self.trunk.pool, [spec.sparsity], [spec.seed + MASK_OFFSET]
        if spec.pruning == "imp":
            masks = load_member(self.paths, trunk_spec(self.cfg, level, spec.seed))[1]
            return {n: masks[n][None] for n in pool}
        if spec.pruning == "random":
            blank = {n: torch.zeros(1, *shape) for n, shape in self.shapes.items()}  # only shapes matter
            return dict(prune_once(blank, list(pool), sparsity, "random", seed))
        dense = load_member(self.paths, trunk_spec(self.cfg, 0, spec.seed))[0]
        return dict(prune_once({n: dense[n][None] for n in pool}, list(pool), sparsity, "random_natural", seed,
                               eps=self.cfg.natural_zero_eps))
