"""`studies/tickets.py`: Caron et al. 2020's winning tickets for one pruning objective.

Stages: imp (the objective's IMP levels with late rewinding), retrain (every level's ticket and its controls
re-trained on labels), transfer (linear probes of every level's frozen features on this dataset and another, and
finetunings on that other dataset with the mask from pre-training or pruning during the finetuning),
report (summary.csv, the Figure 3 analogue, natural sparsity, report.md, over every
objective on disk). Every stage skips what is finished and resumes what was interrupted.
"""
from __future__ import annotations

import logging
import time


from common import preflight
from common.cli import UsageError, select_device
from common.data import DataError, load_dataset
from common.log import setup_logging
from common.models import build_network
from common.paths import Paths
from common.stage import train_populations
from common.studies.per_objective import parse_study
from common.studies.tickets.config import (PRESETS, RULES, RUN_PRESETS, RUN_RULES, STAGES, STUDY, TicketsConfig,
                                           TicketsRun, preset_config)
from common.studies.tickets.imp import Trunk
from common.studies.tickets.objectives import PRUNING_OBJECTIVES
from common.studies.tickets.retrain import Tickets, retrained_levels
from common.studies.tickets.transfer import probe_dataset_name, run_transfer

log = logging.getLogger("prune")


def parse(argv=None) -> tuple[TicketsConfig, TicketsRun]:
    cfg, run = parse_study("tickets.py", __doc__, argv, TicketsConfig, TicketsRun, PRESETS, RUN_PRESETS,
                           preset_config, RULES, RUN_RULES, STAGES)
    if cfg.optimizer == "sam" and cfg.objective == "npid":
        raise UsageError("--optimizer sam --objective npid: SAM's second pass would draw NPID's noise and update its "
                         "memory bank twice per step; use --optimizer sgd or adam")
    if run.index_start > run.index_end:
        raise UsageError(f"--index_start {run.index_start} --index_end {run.index_end}: need start <= end")
    return cfg, run


def check_rewind(cfg: TicketsConfig, trunk: Trunk) -> None:
    total = trunk.steps_per_epoch * cfg.epochs
    if trunk.rewind_step >= total:
        raise UsageError(f"--rewind {cfg.rewind}: step {trunk.rewind_step} is past this run's last step {total - 1} "
                         f"({cfg.epochs} epochs x {trunk.steps_per_epoch} steps); rewind earlier")


def check_transfer(cfg: TicketsConfig, run: TicketsRun) -> None:
    if cfg.layerwise:
        raise UsageError(f"--prune_first_n_layers {cfg.prune_first_n_layers} --prune_last_n_layers "
                         f"{cfg.prune_last_n_layers} --stages transfer: layerwise tickets are "
                         "re-trained, not transferred; drop transfer from --stages")
    other = load_dataset(probe_dataset_name(cfg, run.probe_dataset), run.data_dir)
    try:
        other.train_subset(cfg.transfer_subset)
    except DataError as err:  # the subset's own message names --train_subset
        raise UsageError(str(err).replace("--train_subset", "--transfer_subset", 1)) from None


def main(argv=None):
    cfg, run = parse(argv)
    paths = Paths.at(run.output_root)
    data = load_dataset(cfg.dataset, run.data_dir).train_subset(cfg.train_subset).resized(cfg.image_size)
    trunk = Trunk(cfg, paths, len(data.train_labels), data.num_classes, data.image_size)
    check_rewind(cfg, trunk)
    if "transfer" in run.stages:  # bad transfer flags fail before any training
        check_transfer(cfg, run)
    method = PRUNING_OBJECTIVES[cfg.objective].method
    seeds = list(range(run.index_start, run.index_end + 1))
    folders = [paths.model_dir(cfg.dataset, m, STUDY) for m in (method, "supervised")] + [paths.study_dir(cfg.dataset,
                                                                                                          STUDY)]
    # per seed: every IMP level, its rewind point, and the re-trained tickets (two at level 0, four per level after)
    models = len(seeds) * (run.levels + 2 + 2 + 4 * run.levels)
    preflight.check_outputs(folders, preflight.training_bytes(build_network(cfg.arch, method, data.num_classes),
                                                              models))
    device = select_device(run.cuda_device)
    setup_logging(paths.log_file(cfg.dataset, method, "tickets", STUDY))
    data = data.to(device)
    size = run.default_population_size(device)
    log.info("tickets (%s pruning, %s on %s): seeds %s, %d levels, rewind %s, device %s", cfg.objective, cfg.arch,
             cfg.dataset, seeds, run.levels, cfg.rewind, device)
    results = {}
    for stage in run.stages:
        started = time.time()
        if stage == "imp":
            results[stage] = train_populations([(job, None) for job in trunk.jobs(seeds, run.levels, size)], data,
                                               device, run, paths, paths.state_dir(cfg.dataset, method, STUDY),
                                               f"IMP ({cfg.objective})")
        elif stage == "retrain":
            jobs = Tickets(trunk, data.num_classes).jobs(seeds, retrained_levels(run.levels, run.retrain_levels), size,
                                                         run.natural_control)
            results[stage] = train_populations([(job, None) for job in jobs], data, device, run, paths,
                                               paths.state_dir(cfg.dataset, "supervised", STUDY),
                                               f"tickets ({cfg.objective})")
        elif stage == "transfer":
            results[stage] = run_transfer(trunk, run, seeds, device, size)
        else:
            from common.studies.tickets.report import write_report
            results[stage] = write_report(paths, cfg.dataset, cfg.arch, cfg.rewind, len(Trunk.full_pool(cfg)))
        log.info("stage %s: %s in %.1fs", stage, _outcome(results[stage], stage), time.time() - started)
    return [r for stage in ("imp", "retrain", "transfer") for r in results.get(stage, [])]


def _outcome(result, stage: str) -> str:
    if stage == "transfer":  # the probes ran (or were on disk); finetunings only for --finetune_objectives
        return f"probes written, {len(result)} finetunings trained"
    if isinstance(result, list):
        return f"{len(result)} models trained" if result else "skipped: everything already on disk"
    return f"written to {result}"
