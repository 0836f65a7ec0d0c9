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
from dataclasses import dataclass

import torch

from common import preflight
from common.cli import select_device
from common.data import Dataset, load_dataset
from common.engine.objectives import display_name
from common.errors import DataError, UsageError
from common.log import setup_logging
from common.models import build_network
from common.paths import Paths
from common.stage import train_populations
from common.studies.tickets.commands import ENTRY
from common.studies.tickets.config import STUDY, TicketsConfig, TicketsRun
from common.studies.tickets.imp import Trunk
from common.studies.tickets.report import write_report
from common.studies.tickets.retrain import Tickets
from common.studies.tickets.transfer import probe_dataset_name, run_transfer

log = logging.getLogger("prune")


def parse(argv=None) -> tuple[TicketsConfig, TicketsRun]:
    return ENTRY.parse(argv)


def check_rewind(cfg: TicketsConfig, trunk: Trunk) -> None:
    total = trunk.steps_per_epoch * cfg.epochs
    if trunk.rewind_step >= total:
        raise UsageError(f"--rewind {cfg.rewind}: step {trunk.rewind_step} is past this run's last step {total - 1} "
                         f"({cfg.epochs} epochs x {trunk.steps_per_epoch} steps); rewind earlier")


def check_transfer(cfg: TicketsConfig, run: TicketsRun) -> None:
    if cfg.prune_first_n_layers:
        raise UsageError(f"--prune_first_n_layers {cfg.prune_first_n_layers} --stages transfer: layerwise tickets are "
                         "re-trained, not transferred; drop transfer from --stages")
    other = load_dataset(probe_dataset_name(cfg, run.probe_dataset), run.data_dir)
    try:
        other.train_subset(cfg.transfer_subset)
    except DataError as err:  # the subset's own message names --train_subset
        raise UsageError(str(err).replace("--train_subset", "--transfer_subset", 1)) from None


# ---- the stages -------------------------------------------------------------------------------------------

@dataclass
class Context:
    """One objective's run: its recipe and run, where it writes, the data and device, its IMP trunk."""

    cfg: TicketsConfig
    run: TicketsRun
    paths: Paths
    data: Dataset
    device: torch.device
    trunk: Trunk

    @property
    def seeds(self) -> list[int]:
        return list(range(self.run.index_start, self.run.index_end + 1))

    @property
    def size(self) -> int:
        return self.run.default_population_size(self.device)


def imp(ctx: Context) -> list[dict]:
    state_dir = ctx.paths.state_dir(ctx.cfg.dataset, ctx.cfg.objective, STUDY)
    jobs = ctx.trunk.jobs(ctx.seeds, ctx.run.levels, ctx.size, state_dir)
    return train_populations(jobs, ctx.data, ctx.device, ctx.run, ctx.paths, state_dir, f"IMP ({ctx.cfg.objective})")


def retrain(ctx: Context) -> list[dict]:
    state_dir = ctx.paths.state_dir(ctx.cfg.dataset, "supervised", STUDY)
    jobs = Tickets(ctx.trunk, ctx.data.num_classes).jobs(ctx.seeds, ctx.run.levels, ctx.size, state_dir)
    return train_populations(jobs, ctx.data, ctx.device, ctx.run, ctx.paths, state_dir,
                             f"tickets ({ctx.cfg.objective})")


def transfer(ctx: Context) -> list[dict]:
    return run_transfer(ctx.trunk, ctx.run, ctx.seeds, ctx.device, ctx.size)


def report(ctx: Context):
    return write_report(ctx.paths, ctx.cfg.dataset, ctx.cfg.arch, ctx.cfg.rewind, len(Trunk.full_pool(ctx.cfg)))


STAGES_RUN = {"imp": imp, "retrain": retrain, "transfer": transfer, "report": report}  # in STAGES' order


def run_objective(cfg: TicketsConfig, run: TicketsRun) -> list[dict]:
    """The stages of `run` for the objective of `cfg`; -> the models trained."""
    paths = Paths.at(run.output_root)
    data = load_dataset(cfg.dataset, run.data_dir).train_subset(cfg.train_subset)
    trunk = Trunk(cfg, paths, len(data.train_labels), data.num_classes, data.image_size)
    check_rewind(cfg, trunk)
    if "transfer" in run.stages:  # bad transfer flags fail before any training
        check_transfer(cfg, run)
    seeds = list(range(run.index_start, run.index_end + 1))
    folders = [paths.model_dir(cfg.dataset, m, STUDY) for m in (cfg.objective, "supervised")] + [
        paths.study_dir(cfg.dataset, STUDY)]
    # per seed: every IMP level, its rewind point, and the re-trained tickets (two at level 0, four per level after)
    models = len(seeds) * (run.levels + 2 + 2 + 4 * run.levels)
    preflight.check_outputs(folders, preflight.training_bytes(
        build_network(cfg.arch, cfg.objective, data.num_classes), models))
    device = select_device(run.cuda_device)
    setup_logging(paths.log_file(cfg.dataset, cfg.objective, "tickets", STUDY))
    log.info("tickets (%s pruning, %s on %s): seeds %s, %d levels, rewind %s, device %s", display_name(cfg.objective),
             cfg.arch, cfg.dataset, seeds, run.levels, cfg.rewind, device)
    ctx = Context(cfg, run, paths, data.to(device), device, trunk)
    results = {}
    for name, stage in STAGES_RUN.items():
        if name in run.stages:
            started = time.time()
            results[name] = stage(ctx)
            log.info("stage %s: %s in %.1fs", name, _outcome(results[name], name), time.time() - started)
    return [r for stage in ("imp", "retrain", "transfer") for r in results.get(stage, [])]


def main(argv=None):
    """studies/tickets.py."""
    return run_objective(*parse(argv))


def _outcome(result, stage: str) -> str:
    if stage == "transfer":  # the probes ran (or were on disk); finetunings only for --finetune_objectives
        return f"probes written, {len(result)} finetunings trained"
    if isinstance(result, list):
        return f"{len(result)} models trained" if result else "skipped: everything already on disk"
    return f"written to {result}"
