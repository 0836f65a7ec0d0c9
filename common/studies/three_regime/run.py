"""`studies/three_regime.py`: Zhou et al. 2023's three-regime phase diagram for one objective and one temperature
knob. Stages: train (dense, every temperature), prune (one-shot, every load), retrain (every pruned network with
each retrain seed), connectivity (linear mode connectivity with BatchNorm reset), cka, plot (grid.csv, the four
heatmaps with regimes, report.md, over the objectives on disk). Each stage skips the cells already done.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from common import preflight
from common.cli import select_device
from common.data import Dataset, load_dataset
from common.engine.objectives import display_name
from common.errors import UsageError
from common.log import setup_logging
from common.models import build_network
from common.paths import Paths
from common.stage import train_populations
from common.studies.three_regime.commands import ENTRY
from common.studies.three_regime.config import OBJECTIVES, STUDY, RegimeConfig, RegimeRun
from common.studies.three_regime.grid import Grid
from common.studies.three_regime.knobs import KNOBS
from common.studies.three_regime.report import pair_table, write_report

log = logging.getLogger("prune")


def parse(argv=None) -> tuple[RegimeConfig, RegimeRun]:
    return ENTRY.parse(argv)


@dataclass
class Context:
    """One objective's grid run: its recipe and run, where it writes, the data and device, its grid."""

    cfg: RegimeConfig
    run: RegimeRun
    paths: Paths
    data: Dataset
    device: torch.device
    grid: Grid

    @property
    def size(self) -> int:
        return self.run.default_population_size(self.device)

    @property
    def state_dir(self):
        return self.paths.state_dir(self.cfg.dataset, self.cfg.objective, STUDY)


def train(ctx: Context) -> list[dict]:
    return train_populations(ctx.grid.dense_jobs(ctx.size, ctx.state_dir), ctx.data, ctx.device, ctx.run,
                             ctx.paths, ctx.state_dir, f"dense ({ctx.cfg.objective})")


def prune(ctx: Context) -> int:
    return ctx.grid.prune()


def retrain(ctx: Context) -> list[dict]:
    return train_populations(ctx.grid.retrain_jobs(ctx.size, ctx.state_dir), ctx.data, ctx.device, ctx.run,
                             ctx.paths, ctx.state_dir, f"re-training ({ctx.cfg.objective})")


def connectivity(ctx: Context) -> int:
    return ctx.grid.connectivity(ctx.device)


def cka(ctx: Context) -> int:
    return ctx.grid.cka(ctx.device)


def plot(ctx: Context):
    """grid.csv and the phase plots of every objective whose grid of this recipe is measured on disk."""
    paths, cfg, run = ctx.paths, ctx.cfg, ctx.run
    tables = {}
    for objective in OBJECTIVES:
        grid = Grid(replace(cfg, objective=objective), run, paths, ctx.data)
        measured = {kind: _this_grid(grid.measured(kind), grid) for kind in ("connectivity", "cka")}
        if measured["connectivity"].empty or measured["cka"].empty:  # measured for another grid, or not at all
            continue
        tables[objective] = pair_table(grid.test_errors(), measured["connectivity"], measured["cka"])
    if not tables:
        raise UsageError(f"nothing measured under {paths.study_dir(cfg.dataset, STUDY)}: run the stages train, prune, "
                         f"retrain, connectivity and cka first")
    return write_report(paths, cfg.dataset, tables, cfg.knob, run.barrier_threshold)


# name -> (fn(context), what its result says), in STAGES' order
STAGES_RUN = {
    "train": (train, lambda r: f"{len(r)} dense models trained"),
    "prune": (prune, lambda r: f"{r} networks pruned"),
    "retrain": (retrain, lambda r: f"{len(r)} networks re-trained"),
    "connectivity": (connectivity, lambda r: f"{r} pairs' paths measured"),
    "cka": (cka, lambda r: f"{r} pairs' CKA measured"),
    "plot": (plot, lambda r: f"written to {r}"),
}


def run_objective(cfg: RegimeConfig, run: RegimeRun) -> list[dict]:
    """The stages of `run` for the objective of `cfg`; -> the models trained."""
    paths = Paths.at(run.output_root)
    data = load_dataset(cfg.dataset, run.data_dir).train_subset(cfg.train_subset).resized(cfg.image_size)
    KNOBS[cfg.knob].check(cfg, len(data.train_labels))
    cells = len(cfg.temperatures()) * len(cfg.densities) * len(run.dense_seeds)
    network = build_network(cfg.arch, cfg.objective, data.num_classes, cfg.projection_dim)
    preflight.check_outputs([paths.model_dir(cfg.dataset, cfg.objective, STUDY), paths.study_dir(cfg.dataset, STUDY)],
                            preflight.training_bytes(network, cells * (1 + len(run.retrain_seeds)) + len(run.dense_seeds)))
    device = select_device(run.cuda_device)
    setup_logging(paths.log_file(cfg.dataset, cfg.objective, "three_regime", STUDY))
    data = data.to(device)
    ctx = Context(cfg, run, paths, data, device, Grid(cfg, run, paths, data))
    log.info("three-regime grid (%s, knob %s): temperatures %s x densities %s, dense seeds %s, retrain seeds %s, "
             "device %s", display_name(cfg.objective), cfg.knob, list(cfg.temperatures()), list(cfg.densities),
             list(run.dense_seeds), list(run.retrain_seeds), device)
    trained = []
    for name, (stage, outcome) in STAGES_RUN.items():
        if name in run.stages:
            started = time.time()
            result = stage(ctx)
            trained += result if name in ("train", "retrain") else []
            log.info("stage %s: %s in %.1fs", name, outcome(result), time.time() - started)
    return trained


def main(argv=None):
    """studies/three_regime.py."""
    return run_objective(*parse(argv))


def _this_grid(frame: pd.DataFrame, grid: Grid) -> pd.DataFrame:
    """The measured rows of this grid's setting and cells."""
    if frame.empty or "setting" not in frame.columns:
        return frame.iloc[0:0]
    cells = {(t, d, s) for t, d, s in grid.cells()}
    in_cells = [(t, d, s) in cells for t, d, s in zip(frame["temperature"], frame["density"], frame["dense_seed"])]
    mine = frame["setting"].eq(grid.setting).to_numpy() & np.array(in_cells, dtype=bool)
    return frame[mine]
