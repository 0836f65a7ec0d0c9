"""The temperatures of the three-regime grid, as a registry of knobs: what each is called in file and model names
and on the axes, how its values are read from the recipe, how a dense run reaches one of them, and what it needs of
the data. A new knob is one entry here (and its recipe fields in config.py); nothing else compares knob names."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from common.errors import UsageError


@dataclass(frozen=True)
class Knob:
    tag: str  # in model and file names: knob-<tag>_temperature-<T>, connectivity/<objective>_<tag>_<T>.csv
    label: str  # the temperature axis of the phase plots
    values: Callable  # recipe -> the grid's temperatures, in order
    dense_phase: Callable  # (recipe, training images, temperature, phase builder) -> the dense run's Phase
    one_run: bool = False  # one dense run reaches every temperature (its checkpoints at each); else one run each
    check: Callable = lambda cfg, n_train: None  # what the recipe needs of the data: raises a UsageError
    # Which way the values run in temperature (rows are drawn and walked hottest first): Zhou et al.'s Figure 1 puts
    # temperature upward and their Figure 2 draws epoch 10 on top (fewer epochs: hotter; the learning-rate drops
    # cool the run); smaller batches are hotter (more gradient noise); a larger SAM radius hotter [our reading].
    hottest_first: str = "ascending"  # or "descending"
    retrain_batch: int = 64  # their scripts' re-training batch in this knob's tree (--retrain_batch_size none)


def _epochs_phase(cfg, n_train: int, temperature, phase):
    """One run of --epochs; its checkpoints at every --save_every-th epoch are the temperatures (rewind points)."""
    per_epoch = math.ceil(n_train / cfg.batch_size)
    steps = tuple(e * per_epoch for e in cfg.temperatures() if e < cfg.epochs)
    return phase(cfg.epochs, cfg.batch_size, cfg.learning_rate, cfg.lr_milestones, snapshot_steps=steps)


def _batch_phase(cfg, n_train: int, temperature, phase):
    """A fixed iteration budget: epochs from it, milestones at 50 % and 75 %, last incomplete batches dropped."""
    per_epoch = max(1, n_train // temperature)
    epochs = max(1, round(cfg.iterations / per_epoch))
    milestones = sorted({max(1, round(epochs * f)) for f in (0.5, 0.75)})
    return phase(epochs, temperature, cfg.learning_rate, milestones, drop_last=True)


def _sam_phase(cfg, n_train: int, temperature, phase):
    return phase(cfg.epochs, cfg.batch_size, cfg.learning_rate, cfg.lr_milestones, optimizer="sam",
                 sam_rho=temperature, sam_adaptive=cfg.sam_adaptive)


def _every_checkpoint_ends_the_run(cfg, n_train: int) -> None:
    if cfg.epochs % cfg.save_every:
        raise UsageError(f"--save_every {cfg.save_every}: must divide --epochs {cfg.epochs} (the last checkpoint is "
                         f"the run's end)")


def _batches_fit(cfg, n_train: int) -> None:
    too_big = [b for b in cfg.batch_sizes if b > n_train]
    if too_big:
        raise UsageError(f"--batch_sizes {','.join(map(str, too_big))}: larger than the {n_train} training images")


KNOBS: dict[str, Knob] = {
    "epochs": Knob("epochs", "dense training epochs", lambda cfg: tuple(range(cfg.save_every, cfg.epochs + 1,
                                                                              cfg.save_every)),
                   _epochs_phase, one_run=True, check=_every_checkpoint_ends_the_run),
    "batch_size": Knob("batch", "batch size", lambda cfg: cfg.batch_sizes, _batch_phase, check=_batches_fit,
                       retrain_batch=128),
    "sam_rho": Knob("rho", "SAM ρ", lambda cfg: cfg.sam_rhos, _sam_phase, hottest_first="descending"),
}
