"""`sup_training.py` / `clr_training.py`: train populations, dense or with gradual magnitude pruning.

Models `--index_start..--index_end` (seed = index) are trained for every sparsity in `--pruning_percentages`
(0.0 = dense). Members of all requested sparsities are packed into populations of `--population_size` that
train together; every member is saved as an ordinary per-model checkpoint.
"""
from __future__ import annotations

import logging
import math
from dataclasses import replace

import torch

from common import preflight
from common.cli import check_device, parse_flags, preset_values, select_device
from common.errors import UsageError
from common.config import check_fields
from common.data import load_dataset
from common.data.augment import supervised_augment
from common.engine.objectives import OBJECTIVES, display_name, make_objective
from common.engine.phase import Job, Phase
from common.inventory import models_table
from common.io import write_csv
from common.log import setup_logging
from common.models import build_network, seeded_network
from common.paths import Paths
from common.phases import supcon_phase
from common.pruning.pools import CLASSIFIER, POOLS
from common.recipe import shaping, value_text
from common.spec import ModelSpec
from common.stage import plan_chunks, train_populations
from common.studies.corti2022.commands import PRUNINGS, retrain_command, script, training_command, with_recipe
from common.studies.corti2022.config import (PRESET_NAMES, RUN_RULES, TRAIN_RULES, RunConfig, TrainConfig,
                                             preset_config, preset_run, pruning_name, resolve_gmp)
from common.zoo import finished_or_conflict, refuse_mixing

log = logging.getLogger("prune")


# ---- phases --------------------------------------------------------------------------------------

def build_phases(cfg: TrainConfig, n_train: int, network, image_size: int = 32) -> list[Phase]:
    """The paper's recipe as phases. Supervised: one CE phase, GMP over every conv weight plus the classifier's
    weight and bias. SupCon: the encoder with the SupCon loss (GMP over its convs), then the linear classifier on
    the frozen encoder with CE (its own GMP over weight and bias), as the authors' clr_training.py."""
    names = [n for n, _ in network.named_parameters()]
    steps = math.ceil(n_train / cfg.batch_size) * cfg.epochs
    window = resolve_gmp(cfg.method, cfg.gmp_schedule, steps, (cfg.begin_step, cfg.end_step, cfg.frequency))
    sgd = dict(momentum=cfg.momentum, nesterov=cfg.nesterov, milestones=cfg.lr_milestones, gamma=cfg.lr_gamma)
    if OBJECTIVES[cfg.method].classifier:  # labels train the whole network
        return [Phase("train", make_objective("supervised"), cfg.epochs, cfg.batch_size, cfg.learning_rate,
                      weight_decay=cfg.weight_decay, trainable=tuple(names),
                      augment=supervised_augment(cfg, image_size),
                      prune_names=tuple(POOLS["encoder_convs_and_classifier"](network)), gmp=window, **sgd)]
    head_steps = math.ceil(n_train / cfg.batch_size_head) * cfg.head_epochs
    head_window = resolve_gmp("supcon", "head", head_steps,
                              (cfg.begin_step_head, cfg.end_step_head, cfg.frequency_head))
    encoder = supcon_phase("encoder", cfg.temperature, cfg.base_temperature, names, cfg.dataset, epochs=cfg.epochs,
                           batch_size=cfg.batch_size, learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay,
                           prune_names=tuple(POOLS["encoder_convs"](network)), gmp=window, **sgd)
    head = Phase("head", make_objective("linear"), cfg.head_epochs, cfg.batch_size_head, cfg.learning_rate_head,
                 momentum=cfg.momentum, weight_decay=0.0, trainable=CLASSIFIER,
                 augment=supervised_augment(cfg, image_size), milestones=cfg.head_milestones, gamma=cfg.head_gamma,
                 cosine=cfg.head_cosine, eta_min=cfg.head_eta_min, prune_names=tuple(POOLS["classifier"](network)),
                 gmp=head_window)
    return [encoder, head]


# ---- validation ----------------------------------------------------------------------------------

def validate(run: RunConfig, phases: list[Phase], n_train: int) -> None:
    bad = [s for s in run.pruning_percentages if not 0.0 <= s < 1.0]
    if bad or not run.pruning_percentages:
        shown = value_text(bad) if bad else "is empty"
        raise UsageError(f"--pruning_percentages {shown}: sparsities must lie in [0, 1), e.g. 0.0,0.5,0.9")
    if run.index_start < 0 or run.index_start > run.index_end:
        raise UsageError(f"--index_start {run.index_start} --index_end {run.index_end}: need 0 <= start <= end")
    if run.population_size < 0:
        raise UsageError(f"--population_size {run.population_size}: use 0 (auto), 1, or more")
    for phase in phases:
        if phase.epochs < 1 or phase.batch_size < 1:
            raise UsageError(f"{phase.name}: epochs and batch sizes must be >= 1")
        if any(s > 0 for s in run.pruning_percentages):
            validate_window(phase, n_train)


def validate_window(phase: Phase, n_train: int) -> None:
    window, last = phase.gmp, phase.steps_per_epoch(n_train) * phase.epochs - 1
    flags = "--begin_step_head/--end_step_head" if phase.name == "head" else "--begin_step/--end_step"
    if window.begin_step < 0 or window.begin_step >= window.end_step:
        raise UsageError(f"{flags} {window.begin_step}/{window.end_step}: the begin step must be >= 0 and "
                         f"< the end step")
    if window.end_step > last:
        raise UsageError(f"{flags}: end step {window.end_step} is past this run's last step {last} "
                         f"({phase.epochs} epochs x {phase.steps_per_epoch(n_train)} steps); lower it")
    if window.frequency < 1:
        raise UsageError(f"GMP frequency {window.frequency}: must be >= 1")


# ---- entry point -------------------------------------------------------------------------------

def parse(method: str, argv=None) -> tuple[TrainConfig, RunConfig]:
    shown = {preset: preset_values(preset_config(method, preset), preset_run(preset)) for preset in PRESET_NAMES}
    recipe, job = parse_flags(script(method, "training"), __doc__, argv, TrainConfig, RunConfig, method=method,
                              presets=shown)
    run = preset_run(**job)
    cfg = preset_config(method, run.preset, **recipe)
    check_fields(cfg, TRAIN_RULES)
    check_fields(run, RUN_RULES)
    check_device(run.cuda_device)
    return cfg, run


def main(method: str, argv=None) -> list[dict]:
    """sup_training.py / clr_training.py."""
    return train(method, *parse(method, argv))


def train(method: str, cfg: TrainConfig, run: RunConfig) -> list[dict]:
    """Train the models of `run` (seeds x sparsities) with `cfg`; -> the trained members' metadata."""
    paths = Paths.at(run.output_root)
    data = load_dataset(cfg.dataset, run.data_dir).train_subset(cfg.train_subset)
    template = build_network(cfg.arch, method, data.num_classes, cfg.projection_dim)
    phases = build_phases(cfg, len(data.train_labels), template, data.image_size)
    validate(run, phases, len(data.train_labels))

    specs = [ModelSpec(method, cfg.arch, cfg.dataset, pruning_name(cfg, s), s, seed)
             for s in run.pruning_percentages for seed in range(run.index_start, run.index_end + 1)]
    recipe_for = lambda spec: cfg.recipe(spec.sparsity)  # noqa: E731 - what shapes each member
    todo = [s for s in specs if not finished_or_conflict(paths, s, recipe_for(s), retrain=retrain_command)]
    refuse_mixing(paths, todo, recipe_for, lambda members, recipe: training_command(
        method, with_recipe(cfg, recipe), replace(run, index_start=min(s.seed for s in members),
                                                  index_end=max(s.seed for s in members),
                                                  pruning_percentages=(members[0].sparsity,)),
        tuple(name for name, _ in PRUNINGS[members[0].pruning].asks)))
    preflight.check_outputs([paths.model_dir(cfg.dataset, method), paths.log_dir(cfg.dataset, method)],
                            preflight.training_bytes(template, len(todo)))
    device = select_device(run.cuda_device)
    setup_logging(paths.log_file(cfg.dataset, method, "training"))
    log.info("%s training: %d models asked, %d already finished, device %s", display_name(method), len(specs),
             len(specs) - len(todo), device)
    log.info("recipe (what shapes a %s model; the GMP fields only the pruned ones): %s", display_name(method),
             shaping(cfg))
    data = data.to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    state_dir = paths.state_dir(cfg.dataset, method)
    planned, left_alone = plan_chunks(specs, todo, run.default_population_size(device), state_dir, recipe_for)
    for line in left_alone:
        log.warning(line)
    jobs = [(Job(specs=p.specs, phases=phases, config=cfg.to_dict(), recipes=[recipe_for(s) for s in p.specs],
                 final_sparsity=[s.sparsity for s in p.specs],
                 make_networks=lambda chunk=p.specs: [seeded_network(cfg.arch, method, data.num_classes,
                                                                     cfg.projection_dim, s.seed) for s in chunk]),
             p.state_path) for p in planned]
    results = train_populations(jobs, data, device, run, paths, state_dir, f"{display_name(method)} training")
    write_csv(models_table(paths, cfg.dataset, method), paths.models_csv(cfg.dataset, method))
    for r in results:
        acc = r["test_accuracy"]
        log.info("%s: test accuracy %s, sparsity %.4f%s", ModelSpec.from_meta(r["spec"]).name,
                 "n/a" if acc is None else f"{acc:.4f}", r["sparsity"], " FAILED" if r["failed"] else "")
    return results

