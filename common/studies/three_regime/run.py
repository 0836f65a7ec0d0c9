"""`studies/three_regime.py`: Zhou et al. 2023's three-regime phase diagram for one objective and one temperature
knob. Stages: train (dense, every temperature), prune (one-shot, every load), retrain (every pruned network with
each retrain seed), connectivity (linear mode connectivity with BatchNorm reset), cka, plot (grid.csv, the four
heatmaps with regimes, report.md, over the objectives on disk). Each stage skips the cells already done.
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace

import numpy as np
import pandas as pd

from common import preflight
from common.cli import UsageError, select_device
from common.data import load_dataset
from common.log import setup_logging
from common.models import build_network
from common.paths import Paths
from common.stage import train_populations
from common.studies.per_objective import parse_study
from common.studies.three_regime.config import (OBJECTIVES, PRESETS, RULES, RUN_PRESETS, RUN_RULES, STUDY,
                                                RegimeConfig, RegimeRun, STAGES, preset_config)
from common.studies.three_regime.grid import Grid

log = logging.getLogger("prune")


def parse(argv=None) -> tuple[RegimeConfig, RegimeRun]:
    return parse_study("three_regime.py", __doc__, argv, RegimeConfig, RegimeRun, PRESETS, RUN_PRESETS,
                       preset_config, RULES, RUN_RULES, STAGES)


def main(argv=None):
    cfg, run = parse(argv)
    paths = Paths.at(run.output_root)
    data = load_dataset(cfg.dataset, run.data_dir).train_subset(cfg.train_subset).resized(cfg.image_size)
    if cfg.knob == "epochs" and cfg.epochs % cfg.save_every:
        raise UsageError(f"--save_every {cfg.save_every}: must divide --epochs {cfg.epochs} (the last checkpoint is "
                         f"the run's end)")
    too_big = [b for b in cfg.batch_sizes if b > len(data.train_labels)] if cfg.knob == "batch_size" else []
    if too_big:
        raise UsageError(f"--batch_sizes {too_big}: larger than the {len(data.train_labels)} training images")
    cells = len(cfg.temperatures()) * len(cfg.densities) * len(run.dense_seeds)
    network = build_network(cfg.arch, cfg.objective, data.num_classes, cfg.projection_dim)
    preflight.check_outputs([paths.model_dir(cfg.dataset, cfg.objective, STUDY), paths.study_dir(cfg.dataset, STUDY)],
                            preflight.training_bytes(network, cells * (1 + len(run.retrain_seeds)) + len(run.dense_seeds)))
    device = select_device(run.cuda_device)
    setup_logging(paths.log_file(cfg.dataset, cfg.objective, "three_regime", STUDY))
    data = data.to(device)
    grid = Grid(cfg, run, paths, data)
    state_dir = paths.state_dir(cfg.dataset, cfg.objective, STUDY)
    size = run.default_population_size(device)
    log.info("three-regime grid (%s, knob %s): temperatures %s x densities %s, dense seeds %s, retrain seeds %s, "
             "device %s", cfg.objective, cfg.knob, list(cfg.temperatures()), list(cfg.densities),
             list(run.dense_seeds), list(run.retrain_seeds), device)
    trained = []
    for stage in run.stages:
        started = time.time()
        if stage == "train":
            trained += train_populations([(j, None) for j in grid.dense_jobs(size)], data, device, run, paths, state_dir,
                                         f"dense ({cfg.objective})")
            outcome = f"{len(trained)} dense models trained"
        elif stage == "prune":
            outcome = f"{grid.prune()} networks pruned"
        elif stage == "retrain":
            retrained = train_populations([(j, None) for j in grid.retrain_jobs(size)], data, device, run, paths,
                                          state_dir, f"re-training ({cfg.objective})")
            trained += retrained
            outcome = f"{len(retrained)} networks re-trained"
        elif stage == "connectivity":
            outcome = f"{grid.connectivity(device)} pairs' paths measured"
        elif stage == "cka":
            outcome = f"{grid.cka(device)} pairs' CKA measured"
        else:
            outcome = f"written to {plot(paths, cfg, run, data, device)}"
        log.info("stage %s: %s in %.1fs", stage, outcome, time.time() - started)
    return trained


def plot(paths: Paths, cfg: RegimeConfig, run: RegimeRun, data, device):
    """grid.csv and the phase plots of every objective whose grid of this recipe is measured on disk."""
    from common.studies.three_regime.report import pair_table, write_report

    tables = {}
    for objective in OBJECTIVES:
        grid = Grid(replace(cfg, objective=objective), run, paths, data)
        connectivity, cka = (_this_grid(grid.measured(kind), grid) for kind in ("connectivity", "cka"))
        if connectivity.empty or cka.empty:  # that objective was measured for another grid, or not at all
            continue
        tables[objective] = pair_table(grid.test_errors(), connectivity, cka)
    if not tables:
        raise UsageError(f"nothing measured under {paths.study_dir(cfg.dataset, STUDY)}: run the stages train, prune, "
                         f"retrain, connectivity and cka first")
    return write_report(paths, cfg.dataset, tables, cfg.knob, run.barrier_threshold)


def _this_grid(frame: pd.DataFrame, grid: Grid) -> pd.DataFrame:
    """The measured rows of this grid's setting and cells."""
    if frame.empty or "setting" not in frame.columns:
        return frame.iloc[0:0]
    cells = {(t, d, s) for t, d, s in grid.cells()}
    in_cells = [(t, d, s) in cells for t, d, s in zip(frame["temperature"], frame["density"], frame["dense_seed"])]
    mine = frame["setting"].eq(grid.setting).to_numpy() & np.array(in_cells, dtype=bool)
    return frame[mine]
