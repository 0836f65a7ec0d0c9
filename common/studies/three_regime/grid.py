"""The three-regime grid, stage by stage: dense training at every temperature, one-shot pruning at every load,
re-training every pruned network with each retrain seed, then linear mode connectivity and CKA between pairs of
re-trained networks of one cell. Every stage skips the cells already done, so a rerun resumes cell by cell.

Identity on disk (study 'three_regime'): a dense network is `…_dense_s0_knob-<epochs|batch|rho>_temperature-<T>
_seed<dense seed>` (for the epochs knob one run: the final model, its earlier checkpoints kept as its rewind
points); a pruned one `…_<layerwise|global>_s<1 - density>_knob-…_temperature-<T>_seed<dense seed>`; a re-trained
one adds `_dense-<dense seed>` and takes the retrain seed as its seed (its data order and augmentation).
"""
from __future__ import annotations

import itertools
import math
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from common.data.augment import supervised_augment
from common.engine.inference import evaluate, predict, reset_bn
from common.engine.objectives import METHODS, make_objective
from common.engine.phase import Job, Phase
from common.engine.population import Population
from common.metrics.cka import linear_cka
from common.metrics.knn import weighted_knn_predict
from common.models import build_network, seeded_network
from common.pruning.criteria import CRITERIA
from common.phases import supcon_phase
from common.pruning.pools import POOLS
from common.spec import ModelSpec
from common import checkpoint as ckpt
from common.io import upsert_csv
from common.recipe import fingerprint
from common.stage import planned_jobs
from common.studies.three_regime.commands import retrain_command
from common.studies.three_regime.config import STUDY, RegimeConfig
from common.studies.three_regime.knobs import KNOBS
from common.zoo import finished_or_conflict, load_member, load_rewind_point, save_member
from common.errors import CheckpointError

SCOPE_CRITERIA = {"layer_uniform": "layerwise", "global": "global"}  # scope -> common.pruning.criteria.CRITERIA
AT_CHANCE = 0.02  # a re-training whose last train accuracy is within this of 1 / classes has collapsed


class Grid:
    """One objective's grid under one recipe: the jobs and measurements of every stage."""

    def __init__(self, cfg: RegimeConfig, run, paths, data):
        self.cfg, self.run, self.paths, self.data = cfg, run, paths, data
        self.method = cfg.objective
        template = build_network(cfg.arch, self.method, data.num_classes, cfg.projection_dim)
        self.names = [n for n, _ in template.named_parameters()]
        self.pool = tuple(POOLS["encoder_convs"](template))  # conv weights only: their pruning

    # ---- identity ---------------------------------------------------------------------------------------
    def knobs(self, temperature) -> tuple:
        return (("knob", KNOBS[self.cfg.knob].tag), ("temperature", temperature))

    def dense_spec(self, temperature, seed: int) -> ModelSpec:
        """The model a temperature's dense weights are read from (the epochs knob: the run's final model)."""
        stored = self.cfg.epochs if KNOBS[self.cfg.knob].one_run else temperature
        return ModelSpec(self.method, self.cfg.arch, self.cfg.dataset, "dense", 0.0, seed, study=STUDY,
                         knobs=self.knobs(stored))

    def pruned_spec(self, temperature, density: float, seed: int) -> ModelSpec:
        return ModelSpec(self.method, self.cfg.arch, self.cfg.dataset, SCOPE_CRITERIA[self.cfg.scope], 1.0 - density,
                         seed, study=STUDY, knobs=self.knobs(temperature))

    def retrained_spec(self, temperature, density: float, dense_seed: int, retrain_seed: int) -> ModelSpec:
        pruned = self.pruned_spec(temperature, density, dense_seed)
        return ModelSpec(pruned.method, pruned.arch, pruned.dataset, pruned.pruning, pruned.sparsity, retrain_seed,
                         study=STUDY, knobs=pruned.knobs + (("dense", dense_seed),))

    def temperatures(self) -> tuple:
        """The knob's values this run works on: all, or those of --only_temperatures (one launcher task's)."""
        only = self.run.only_temperatures
        return tuple(t for t in self.cfg.temperatures() if not only or t in only)

    def cells(self):
        """(temperature, density, dense seed) of every cell, in order."""
        return itertools.product(self.temperatures(), self.cfg.densities, self.run.dense_seeds)

    # ---- phases -----------------------------------------------------------------------------------------
    def phase(self, epochs: int, batch_size: int, learning_rate: float, milestones: tuple, **extra) -> Phase:
        """The objective's training phase (PHASES: cross-entropy on the whole network, or SupCon on the encoder)."""
        cfg = self.cfg
        schedule = dict(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, momentum=cfg.momentum,
                        weight_decay=cfg.weight_decay, milestones=tuple(milestones), **extra)
        return PHASES[self.method](self, schedule)

    def dense_phase(self, temperature) -> Phase:
        """How a dense run reaches `temperature` (the knob's, common.studies.three_regime.knobs)."""
        return KNOBS[self.cfg.knob].dense_phase(self.cfg, len(self.data.train_labels), temperature, self.phase)

    # ---- train ------------------------------------------------------------------------------------------
    def dense_jobs(self, size: int, state_dir) -> list[tuple[Job, Path | None]]:
        """(job, resume state) per population of at most `size` dense seeds of each temperature (one run for a
        knob whose temperatures are one run's checkpoints; common.stage.planned_jobs)."""
        temperatures = [self.cfg.epochs] if KNOBS[self.cfg.knob].one_run else self.temperatures()
        jobs = []
        for temperature in temperatures:
            asked = [self.dense_spec(temperature, seed) for seed in self.run.dense_seeds]
            todo = [s for s in asked if not finished_or_conflict(self.paths, s, self.cfg.recipe("dense"),
                                                                 retrain=retrain_command)]
            jobs += planned_jobs(self.paths, asked, todo, size, state_dir, lambda spec: self.cfg.recipe("dense"),
                                 lambda chunk, t=temperature: self.job(chunk, [self.dense_phase(t)], partial(
                                     self.fresh_networks, [s.seed for s in chunk]), stage="dense"), self.command)
        return jobs

    def job(self, specs, phases, make_networks, stage: str = "retrained", **extra) -> Job:
        return Job(specs=specs, phases=phases, make_networks=make_networks, config=self.cfg.to_dict(),
                   recipes=[self.cfg.recipe(stage)] * len(specs), **extra)

    def fresh_networks(self, seeds: list[int]) -> list:
        return [seeded_network(self.cfg.arch, self.method, self.data.num_classes, self.cfg.projection_dim, seed)
                for seed in seeds]

    def command(self, members: list[ModelSpec], recipe: dict) -> str:
        """The command that makes `members` (of one population) with `recipe`."""
        return retrain_command(members[0], recipe, self.paths)

    def dense_state(self, temperature, seed: int) -> dict[str, torch.Tensor]:
        """The dense weights and buffers of a temperature (an earlier epoch: a checkpoint of the run)."""
        spec = self.dense_spec(temperature, seed)
        if KNOBS[self.cfg.knob].one_run and temperature < self.cfg.epochs:
            per_epoch = math.ceil(len(self.data.train_labels) / self.cfg.batch_size)
            key = f"{self.phase(1, 1, 1.0, ()).name}@{temperature * per_epoch}"
            return load_rewind_point(self.paths.rewind_point(spec, key))["tensors"]
        return load_member(self.paths, spec)[0]

    # ---- prune ------------------------------------------------------------------------------------------
    def prune(self) -> int:
        """Every (temperature, density, dense seed) pruned once and saved with its masks; -> how many were new."""
        made = 0
        for temperature, density, seed in self.cells():
            spec = self.pruned_spec(temperature, density, seed)
            if finished_or_conflict(self.paths, spec, self.cfg.recipe("pruned"), retrain=retrain_command):
                continue
            state = self.dense_state(temperature, seed)
            pool = {n: state[n][None] for n in self.pool}
            masks = CRITERIA[SCOPE_CRITERIA[self.cfg.scope]](pool, [1.0 - density], [seed])
            member = {n: m[0] for n, m in masks.items()}
            pruned = {n: t * member[n] if n in member else t for n, t in state.items()}
            meta = dict(spec=spec.to_meta(), config=self.cfg.to_dict(), recipe=self.cfg.recipe("pruned"),
                        sparsity=masks.member_sparsity(0), layer_sparsity=masks.layer_sparsity(0),
                        test_accuracy=None, versions=ckpt.library_versions())
            save_member(self.paths, spec, pruned, member, meta)
            made += 1
        return made

    # ---- retrain ----------------------------------------------------------------------------------------
    def retrain_jobs(self, size: int, state_dir) -> list[tuple[Job, Path | None]]:
        """(job, resume state) per population of at most `size` per (temperature, dense seed): its densities x
        retrain seeds (common.stage.planned_jobs)."""
        cfg = self.cfg
        phase = self.phase(cfg.retrain_epochs, cfg.retrain_batch_size, cfg.retrain_learning_rate,
                           cfg.retrain_milestones)
        jobs = []
        for temperature, seed in itertools.product(self.temperatures(), self.run.dense_seeds):
            asked = [self.retrained_spec(temperature, d, seed, r) for d in cfg.densities for r in self.run.retrain_seeds]
            todo = [s for s in asked if not finished_or_conflict(self.paths, s, cfg.recipe("retrained"),
                                                                 retrain=retrain_command)]
            jobs += planned_jobs(self.paths, asked, todo, size, state_dir, lambda spec: cfg.recipe("retrained"),
                                 self.retrain_job(phase), self.command)
        return jobs

    def retrain_job(self, phase: Phase):
        def make(chunk: list[ModelSpec]) -> Job:
            parents = PrunedParents(self, chunk)
            return self.job(chunk, [phase], parents.networks, prepare=parents.masks)
        return make

    def parent(self, spec: ModelSpec) -> ModelSpec:
        knobs = dict(spec.knobs)
        return self.pruned_spec(knobs["temperature"], 1.0 - spec.sparsity, int(knobs["dense"]))

    # ---- measuring pairs --------------------------------------------------------------------------------
    def pairs(self):
        """(temperature, density, dense seed, retrain seed a, retrain seed b) of every pair to compare."""
        for temperature, density, seed in self.cells():
            for a, b in itertools.combinations(self.run.retrain_seeds, 2):
                yield temperature, density, seed, a, b

    @property
    def setting(self) -> str:
        """Fingerprint of everything a measured pair depends on besides its cell: the networks' recipe and the
        measurement's settings (a row of another arch, scope or CKA image set is never taken for this one's)."""
        run = self.run
        extra = {} if run.path_test_error else dict(path_test_error=False)
        return fingerprint(dict(self.cfg.recipe("retrained"), lmc_points=run.lmc_points, knn_k=run.knn_k,
                                cka_images=run.cka_images, cka_split=run.cka_split, **extra))

    def key(self, temperature, density, seed, a, b) -> dict:
        return dict(setting=self.setting, objective=self.method, knob=self.cfg.knob, temperature=temperature,
                    density=density, dense_seed=seed, retrain_seeds=f"{a}-{b}")

    def measurement_file(self, kind: str, temperature):
        """'connectivity' or 'cka' rows of one temperature point: a file per point, so that launcher tasks of
        different points never write the same file."""
        name = f"{kind}/{self.method}_{KNOBS[self.cfg.knob].tag}_{temperature:g}.csv"
        return self.paths.study_file(self.cfg.dataset, STUDY, name)

    def measured(self, kind: str) -> pd.DataFrame:
        """Every row of `kind` on disk for this objective and knob (any setting: callers filter)."""
        folder = self.paths.study_file(self.cfg.dataset, STUDY, kind)
        files = sorted(folder.glob(f"{self.method}_{KNOBS[self.cfg.knob].tag}_*.csv")) if folder.is_dir() else []
        return pd.concat([pd.read_csv(f) for f in files], ignore_index=True) if files else pd.DataFrame()

    def pairs_to_measure(self, kind: str):
        """(temperature, density, dense seed, [(a, b) not yet measured]) per cell with any: one pruned network's
        re-trainings, measured together."""
        for temperature, density, seed in self.cells():
            done = _done_keys(self.measurement_file(kind, temperature))
            todo = [(a, b) for a, b in itertools.combinations(self.run.retrain_seeds, 2)
                    if tuple(self.key(temperature, density, seed, a, b).values()) not in done]
            if todo:
                yield temperature, density, seed, todo

    def retrained(self, temperature, density, seed, pairs) -> dict[int, tuple[dict, dict]]:
        """{retrain seed: (state, masks)} of the networks in `pairs`, each read once; they must share one mask."""
        members = {r: load_member(self.paths, self.retrained_spec(temperature, density, seed, r))[:2]
                   for r in sorted({r for pair in pairs for r in pair})}
        first = next(iter(members))
        masks = members[first][1]
        for r, (_, other) in members.items():
            if any(not torch.equal(masks[n], other[n]) for n in masks):
                names = [self.retrained_spec(temperature, density, seed, s).name for s in (first, r)]
                raise CheckpointError(f"{names[0]} and {names[1]} hold different masks: re-train them")
        return members

    def connectivity(self, device) -> int:
        """Errors and losses at `lmc_points` points between each pair, BatchNorm reset at each, one row per pair
        and point (train and test error, loss where the objective has one); the pairs and points of a cell are one
        population. -> pairs measured now."""
        measured = 0
        for temperature, density, seed, pairs in self.pairs_to_measure("connectivity"):
            errors = self.path_errors(self.retrained(temperature, density, seed, pairs), pairs, device)
            rows = [dict(self.key(temperature, density, seed, a, b), **point)
                    for (a, b), points in zip(pairs, errors) for point in points]
            upsert_csv(self.measurement_file("connectivity", temperature), pd.DataFrame(rows),
                       list(self.key(temperature, density, seed, 0, 0)) + ["t"])
            measured += len(pairs)
        return measured

    def path_errors(self, members: dict, pairs: list[tuple[int, int]], device) -> list[list[dict]]:
        """Per pair, per point: train and test error and loss (supervised; --no-path_test_error: the train curve
        only) or the k-NN test error (SupCon), after a BatchNorm reset on the training images."""
        ts = np.linspace(0.0, 1.0, self.run.lmc_points)
        masks = next(iter(members.values()))[1]
        states = [interpolate(members[a][0], members[b][0], float(t)) for a, b in pairs for t in ts]
        for state in states:  # the segment keeps the shared mask's zeros
            if not all(bool((state[n][~masks[n]] == 0).all()) for n in masks):
                raise CheckpointError(f"a re-trained network of pairs {pairs} has weights where its mask prunes: "
                                           f"re-train them")
        network = build_network(self.cfg.arch, self.method, self.data.num_classes, self.cfg.projection_dim)
        pop = Population.from_states(network, states, device)
        data = self.data
        reset_bn(pop, data.train_images, data.normalize)
        if METHODS[self.method].classifier:
            train_loss, train_acc = evaluate(pop, data.train_images, data.train_labels, data.normalize)
            if self.run.path_test_error:
                test_loss, test_acc = evaluate(pop, data.test_images, data.test_labels, data.normalize)
            else:
                test_loss, test_acc = torch.full_like(train_loss, np.nan), torch.full_like(train_acc, np.nan)
            points = [dict(t=ts[i % len(ts)], train_error=1 - float(train_acc[i]), test_error=1 - float(test_acc[i]),
                           train_loss=float(train_loss[i]), test_loss=float(test_loss[i])) for i in range(pop.size)]
        else:
            support = predict(pop, data.train_images, data.normalize, "features")
            query = predict(pop, data.test_images, data.normalize, "features")
            labels = data.train_labels.cpu()
            points = [dict(t=ts[i % len(ts)], train_error=np.nan, train_loss=np.nan, test_loss=np.nan,
                           test_error=float((weighted_knn_predict(support[i].cpu(), labels, query[i].cpu(),
                                                                  self.run.knn_k, num_classes=data.num_classes)
                                             != data.test_labels.cpu()).double().mean()))
                      for i in range(pop.size)]
        return [points[i:i + len(ts)] for i in range(0, len(points), len(ts))]

    def cka(self, device) -> int:
        """Linear CKA between the two networks of each pair on a fixed image set (no augmentation): logits,
        softmax and the pooled representation (SupCon: the representation and the projection); a cell's networks
        run once, as one population, and every pair of them is compared. -> pairs measured now."""
        measured = 0
        images = (self.data.train_images if self.run.cka_split == "train" else self.data.test_images)
        images = images[:self.run.cka_images]
        network = build_network(self.cfg.arch, self.method, self.data.num_classes, self.cfg.projection_dim)
        for temperature, density, seed, pairs in self.pairs_to_measure("cka"):
            members = self.retrained(temperature, density, seed, pairs)
            pop = Population.from_states(network, [state for state, _ in members.values()], device)
            outputs = {"features": predict(pop, images, self.data.normalize, "features")}
            if METHODS[self.method].classifier:
                logits = predict(pop, images, self.data.normalize, "logits")
                outputs.update(logits=logits, softmax=logits.softmax(-1))
            if METHODS[self.method].embedding:
                outputs["projection"] = predict(pop, images, self.data.normalize, "projection")
            index = {r: i for i, r in enumerate(members)}
            first, second = ([index[pair[k]] for pair in pairs] for k in (0, 1))
            ckas = {name: linear_cka(out[first], out[second]) for name, out in outputs.items()}
            rows = [dict(self.key(temperature, density, seed, a, b),
                         **{f"cka_{name}": float(values[p]) for name, values in ckas.items()})
                    for p, (a, b) in enumerate(pairs)]
            upsert_csv(self.measurement_file("cka", temperature), pd.DataFrame(rows),
                       list(self.key(temperature, density, seed, 0, 0)))
            measured += len(pairs)
        return measured

    def test_errors(self) -> pd.DataFrame:
        """Each re-trained network's test error: the mean over its last `test_error_epochs` re-training epochs of
        1 - accuracy (their notebook: 5); SupCon has none here (report.pair_table takes the k-NN error at the
        path's endpoints). `at_chance`: its re-training ended at chance on its own training images (it collapsed:
        at 1 % density a few do), which the report counts per cell."""
        rows, chance = [], 1.0 / self.data.num_classes + AT_CHANCE
        for temperature, density, seed in self.cells():
            for r in self.run.retrain_seeds:
                spec = self.retrained_spec(temperature, density, seed, r)
                if not self.paths.metrics_csv(spec).is_file():
                    raise CheckpointError(f"{self.paths.metrics_csv(spec)} is missing: run the retrain stage "
                                               f"of this grid (--objective {self.method} --stages retrain)")
                history = pd.read_csv(self.paths.metrics_csv(spec))
                tested = history["test_accuracy"].dropna().tail(self.run.test_error_epochs)
                trained = history["train_accuracy"].dropna().tail(1)
                rows.append(dict(objective=self.method, knob=self.cfg.knob, temperature=temperature, density=density,
                                 dense_seed=seed, retrain_seed=r,
                                 test_error=float(1 - tested.mean()) if len(tested) else np.nan,
                                 at_chance=bool(len(trained)) and float(trained.iloc[0]) <= chance))
        return pd.DataFrame(rows)


def _label_phase(grid: Grid, schedule: dict) -> Phase:
    return Phase("train", make_objective("supervised"), trainable=tuple(grid.names),
                 augment=supervised_augment(grid.cfg, grid.data.image_size), **schedule)


def _supcon_phase(grid: Grid, schedule: dict) -> Phase:
    return supcon_phase("encoder", grid.cfg.temperature, grid.cfg.base_temperature, grid.names, grid.cfg.dataset,
                        **schedule)


PHASES = {"supervised": _label_phase, "supcon": _supcon_phase}  # objective -> (grid, schedule) -> its phase


class PrunedParents:
    """The pruned networks one re-training population starts from, each read from disk once however many retrain
    seeds share it: its masks are the job's initial masks (`masks`, the job's prepare), its weights the members'
    networks (`networks`, which then lets them go)."""

    def __init__(self, grid: Grid, specs: list[ModelSpec]):
        self.grid, self.specs, self.loaded = grid, specs, {}

    def member(self, spec: ModelSpec) -> tuple[dict, dict]:
        parent = self.grid.parent(spec)
        if parent.name not in self.loaded:
            self.loaded[parent.name] = load_member(self.grid.paths, parent)[:2]
        return self.loaded[parent.name]

    def masks(self, job: Job) -> None:
        masks = [self.member(spec)[1] for spec in job.specs]
        job.initial_masks = {n: torch.stack([m[n] for m in masks]) for n in self.grid.pool}

    def networks(self) -> list:
        cfg, networks = self.grid.cfg, []
        for spec in self.specs:
            network = build_network(cfg.arch, self.grid.method, self.grid.data.num_classes, cfg.projection_dim)
            network.load_state_dict(self.member(spec)[0])
            networks.append(network)
        self.loaded.clear()
        return networks


def interpolate(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], t: float) -> dict[str, torch.Tensor]:
    """(1 - t) a + t b for every floating tensor; integer buffers (BatchNorm's batch count) are a's."""
    return {n: (1 - t) * a[n] + t * b[n] if a[n].is_floating_point() else a[n].clone() for n in a}


def _done_keys(path) -> set:
    if not path.is_file():
        return set()
    frame = pd.read_csv(path)
    columns = ["setting", "objective", "knob", "temperature", "density", "dense_seed", "retrain_seeds"]
    if not set(columns) <= set(frame.columns):
        return set()
    return {tuple(row) for row in frame[columns].drop_duplicates().itertuples(index=False)}
