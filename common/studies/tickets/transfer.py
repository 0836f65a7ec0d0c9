"""Transfer of pruned features (Caron et al. 2020, §4.1).

Figure 1, linear probes: every IMP level's trained network of the pruning objective, frozen (BatchNorm in eval
mode), its globally pooled features at the output of every stage, a linear classifier per stage
(common.metrics.probe) on the labels of the pretext's own dataset and of another dataset (--probe_dataset). The
probe accuracy against the pruning rate says whether pruning keeps what the features are worth for labels.

Figure 2, pruning during pre-training or during transfer, at equal density: each level L of the pre-trained
network (its IMP mask held, its trained weights) finetuned on the other dataset's labels with a fresh label head,
against the dense pre-trained network (level 0) pruned while it is finetuned there, by global gradual magnitude
pruning (Zhu & Gupta's cubic schedule over the first three quarters of the finetuning, about 30 events) down to
level L's density. The finetunings are scored on the probes' test images (--probe_test_subset), which their
recipe records.
Both finetunings run the study's recipe on the other dataset. Caron et al. prune during transfer with their
pruning method (IMP, on Pascal VOC); GMP is our cheaper stand-in: one finetuning instead of L (docs/fidelity.md,
notes).
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from common.errors import UsageError
from common.config import with_dataset_defaults
from common.data import Dataset, load_dataset
from common.engine.hooks import GMPEvents
from common.engine.inference import predict
from common.engine.objectives import display_name
from common.engine.phase import Job
from common.io import write_csv
from common.metrics.probe import linear_probe_accuracy
from common.models import build_network, seeded_network
from common.pruning.gmp import GMPWindow
from common.spec import ModelSpec
from common.stage import planned_jobs, train_populations
from common.studies.tickets.commands import retrain_command
from common.studies.tickets.config import STUDY, TicketsConfig, level_density, objective_tag
from common.studies.tickets.imp import Trunk, trunk_spec
from common.studies.tickets.objectives import label_phase
from common.studies.tickets.retrain import REINIT_OFFSET
from common.zoo import finished_or_conflict, load_member, load_population

log = logging.getLogger("prune")

# the other dataset a network's features are probed on when --probe_dataset is not given
PROBE_PARTNER = {"digits": "fashion_mnist", "fashion_mnist": "digits", "cifar10": "fashion_mnist"}
# what identifies a probe row: the network probed and the probe protocol
PROBE_KEYS = ["arch", "objective", "pruning_rate", "layers", "rewind", "level", "seed", "probe_dataset",
              "train_examples", "test_examples", "probe_steps"]


def probe_dataset_name(cfg: TicketsConfig, asked: str) -> str:
    name = asked or PROBE_PARTNER.get(cfg.dataset, "")
    if not name or name == cfg.dataset:
        raise UsageError(f"--probe_dataset {asked or '(none)'}: name another dataset than {cfg.dataset} to probe "
                         f"and finetune the pruned features on, e.g. --probe_dataset fashion_mnist")
    return name


def probe_sets(cfg: TicketsConfig, run, device) -> dict[str, Dataset]:
    """The pretext's own dataset (its training images: --train_subset, at --image_size) and the other one
    (--transfer_subset training images, class-balanced, at its own size), each scored on the first
    --probe_test_subset test images."""
    sets = {}
    other = probe_dataset_name(cfg, run.probe_dataset)
    for name, subset, size in ((cfg.dataset, cfg.train_subset, cfg.image_size), (other, cfg.transfer_subset, 0)):
        data = load_dataset(name, run.data_dir).train_subset(subset).resized(size)
        if run.probe_test_subset:
            data = replace(data, test_images=data.test_images[:run.probe_test_subset],
                           test_labels=data.test_labels[:run.probe_test_subset])
        sets[name] = data.to(device)
    return sets


def stage_features(pop, data: Dataset, taps: tuple, images: torch.Tensor) -> list[torch.Tensor]:
    """Pooled outputs of every stage [P, N, d_stage], BatchNorm in eval mode, no gradients."""
    _, hidden = predict(pop, images, data.normalize, mode="hidden")
    return [hidden[t] for t in taps]


def probe_identity(cfg: TicketsConfig, level: int, seed: int, name: str, data: Dataset, steps: int) -> dict:
    """What identifies a probe row (PROBE_KEYS): the network probed and the probe protocol."""
    return dict(arch=cfg.arch, objective=objective_tag(cfg), pruning_rate=cfg.pruning_rate,
                layers=cfg.prune_first_n_layers, rewind=cfg.rewind, level=level, seed=seed, probe_dataset=name,
                train_examples=len(data.train_labels), test_examples=len(data.test_labels), probe_steps=steps)


def probe_level(trunk: Trunk, level: int, seeds: list[int], sets: dict[str, Dataset], steps: int,
                device) -> list[dict]:
    """Probe accuracy of every stage of one level's trained networks (one per seed) on every probe dataset."""
    specs = [trunk_spec(trunk.cfg, level, seed) for seed in seeds]
    pop, _ = load_population(trunk.paths, specs, device, trunk.num_classes)
    taps = build_network(trunk.cfg.arch, "supervised").encoder.stage_taps
    rows = []
    for name, data in sets.items():
        train = stage_features(pop, data, taps, data.train_images)
        test = stage_features(pop, data, taps, data.test_images)
        for stage, (train_x, test_x) in enumerate(zip(train, test), start=1):
            accuracy = linear_probe_accuracy(train_x, data.train_labels, test_x, data.test_labels, data.num_classes,
                                             steps=steps)
            rows += [dict(probe_identity(trunk.cfg, level, seed, name, data, steps), stage=stage,
                          density=level_density(trunk.cfg.pruning_rate, level), accuracy=float(acc))
                     for seed, acc in zip(seeds, accuracy)]
    return rows


def run_probes(trunk: Trunk, seeds: list[int], levels: list[int], sets: dict[str, Dataset], steps: int,
               device) -> str:
    """Probes of `levels` for every seed not yet in the objective's probes file (its rows are reused when the probe
    protocol matches), written atomically after each level."""
    path = probes_path(trunk.paths, trunk.cfg)
    table = pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=PROBE_KEYS)
    done = set(map(tuple, table[PROBE_KEYS].astype(str).values.tolist()))
    for level in levels:
        todo = [seed for seed in seeds if not all(_key(trunk.cfg, level, seed, name, data, steps) in done
                                                 for name, data in sets.items())]
        if not todo:
            continue
        rows = pd.DataFrame(probe_level(trunk, level, todo, sets, steps, device))
        network = PROBE_KEYS[:7]  # a network probed again under another protocol replaces its rows
        stale = table[network].astype(str).apply(tuple, axis=1).isin(rows[network].astype(str).apply(tuple, axis=1))
        table = pd.concat([table[~stale], rows], ignore_index=True) if not table.empty else rows
        write_csv(table, path)
        log.info("probed level %d (%s): %s", level, display_name(trunk.cfg.objective),
                 rows.groupby(["probe_dataset", "stage"])["accuracy"].mean().round(3).to_dict())
    return str(path)


def probes_path(paths, cfg: TicketsConfig):
    return paths.study_file(cfg.dataset, STUDY, f"probes_{cfg.arch}_{objective_tag(cfg)}.csv")


def _key(cfg: TicketsConfig, level: int, seed: int, name: str, data: Dataset, steps: int) -> tuple:
    return tuple(map(str, probe_identity(cfg, level, seed, name, data, steps).values()))


class Finetunes:
    """Figure 2's finetuning jobs on the other dataset: each level's pre-trained pruned network, and the dense one
    pruned during the finetuning to that level's density."""

    def __init__(self, trunk: Trunk, target: Dataset, target_name: str):
        self.trunk, self.cfg, self.paths = trunk, trunk.cfg, trunk.paths
        self.target, self.target_name = target, target_name
        self.target_cfg = with_dataset_defaults(replace(self.cfg, dataset=target_name, vertical_flip=None,
                                                        train_subset=self.cfg.transfer_subset, image_size=0))
        template = build_network(self.cfg.arch, "supervised", target.num_classes)
        self.names = [n for n, _ in template.named_parameters()]

    def spec(self, level: int, seed: int, pruned: str) -> ModelSpec:
        """pruned: 'imp' (during pre-training: the IMP level's mask and weights) or 'transfer_gmp'."""
        return ModelSpec("supervised", self.cfg.arch, self.target_name, pruned,
                         1.0 - level_density(self.cfg.pruning_rate, level), seed, study=STUDY,
                         knobs=(("objective", objective_tag(self.cfg)), ("source", self.cfg.dataset.replace("_", "-")),
                                ("level", level), ("rewind", self.cfg.rewind)))

    def recipe(self) -> dict:
        """The pre-training recipe, the finetuning's on the other dataset, and the test images it is scored on
        (--probe_test_subset): another test set is another model, never a silent mix."""
        return dict(self.cfg.recipe(pruned=True, transfer=True), target=self.target_cfg.recipe(pruned=False),
                    test_examples=len(self.target.test_labels))

    def jobs(self, seeds: list[int], levels: tuple[int, ...], population_size: int,
             state_dir) -> list[tuple[Job, Path | None]]:
        """(job, resume state) per level, way of pruning and population of --population_size seeds
        (common.stage.planned_jobs)."""
        jobs = []
        for level in levels:
            for pruned in ("imp", "transfer_gmp") if level else ("imp",):  # level 0: the dense finetuning
                asked = [self.spec(level, seed, pruned) for seed in seeds]
                todo = [s for s in asked if not finished_or_conflict(self.paths, s, self.recipe(),
                                                                     retrain=retrain_command)]
                jobs += planned_jobs(self.paths, asked, todo, population_size, state_dir, lambda spec: self.recipe(),
                                     lambda specs, level=level, pruned=pruned: self.job(specs, level, pruned),
                                     self.trunk.command)
        return jobs

    def job(self, specs: list[ModelSpec], level: int, pruned: str) -> Job:
        phase = label_phase(self.target_cfg, self.names, self.target.image_size)
        source_level = level if pruned == "imp" else 0
        if pruned == "transfer_gmp":
            total = phase.steps_per_epoch(len(self.target.train_labels)) * phase.epochs
            window = GMPWindow(0, max(1, 3 * total // 4), max(1, total // 40))  # ~30 events over 3/4 of it
            hook = GMPEvents(window, self.trunk.pool, [s.sparsity for s in specs], scope="global")
            phase = replace(phase, hooks=(hook,))
        sources = {}  # each pre-trained member read once, for its weights and its masks

        def source(seed: int):
            if seed not in sources:
                sources[seed] = load_member(self.paths, trunk_spec(self.cfg, source_level, seed))[:2]
            return sources[seed]

        job = Job(specs=specs, phases=[phase], config=self.target_cfg.to_dict(), recipes=[self.recipe()] * len(specs),
                  make_networks=lambda: [self.network(s, source(s.seed)[0]) for s in specs])
        if pruned == "imp" and level:
            job.prepare = lambda job: self.hold_masks(job, [source(s.seed)[1] for s in job.specs])
        return job

    def network(self, spec: ModelSpec, trained: dict):
        """The pre-trained encoder (`trained`: its state dict) with a fresh label head for the other dataset."""
        network = seeded_network(self.cfg.arch, "supervised", self.target.num_classes, 128, spec.seed + REINIT_OFFSET)
        state = network.state_dict()
        state.update({k: v for k, v in trained.items() if k.startswith("encoder.")})
        network.load_state_dict(state, strict=True)
        return network

    def hold_masks(self, job: Job, masks: list[dict]) -> None:
        job.initial_masks = {n: torch.stack([m[n] for m in masks]) for n in self.trunk.pool}


def run_transfer(trunk: Trunk, run, seeds: list[int], device, population_size: int) -> list[dict]:
    """The transfer stage of one pruning objective: the probes of the levels of --transfer_levels (Fig. 1; level 0
    always), then, for the objectives of --finetune_objectives, the finetunings of those levels on the probe
    dataset (Fig. 2). -> the finetuned models' metadata."""
    cfg = trunk.cfg
    sets = probe_sets(cfg, run, device)
    levels = sorted({0, *(level for level in (run.transfer_levels or range(run.levels + 1)) if level <= run.levels)})
    run_probes(trunk, seeds, levels, sets, run.probe_steps, device)
    if cfg.objective not in run.finetune_objectives:
        return []
    target_name = probe_dataset_name(cfg, run.probe_dataset)
    target = sets[target_name]  # the probes' training images; scored on the probes' test images
    state_dir = trunk.paths.state_dir(target_name, "supervised", STUDY)
    jobs = Finetunes(trunk, target, target_name).jobs(seeds, levels, population_size, state_dir)
    return train_populations(jobs, target, device, run, trunk.paths, state_dir, f"transfer ({cfg.objective})")
