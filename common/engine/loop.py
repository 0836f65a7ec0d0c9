"""The training loop: a `Trainer` runs a `Job` through its phases; a `PhaseRun` is one phase's step loop, with
everything around the steps composed as hooks (common.engine.hooks).

Every member has its own CPU generator (seeded by its seed) that draws its data order and augmentation
parameters, so a member trained inside a population follows exactly the trajectory it follows when trained
alone. Masks hold through training: gradients of pruned entries are zeroed before each step and weights are
multiplied by their masks after it, so momentum and weight decay can never regrow them.
"""
from __future__ import annotations

import copy
import logging
import time
from pathlib import Path

import torch

from common.data import Dataset
from common.engine.batches import Batches, Recorded
from common.engine.hooks import Checkpoint, GMPEvents, History, Preemption, Signals, Snapshot, freeze_failed
from common.engine.optimizers import build_optimizer
from common.engine.phase import Job, Phase
from common.engine.population import Population
from common.engine.precision import amp_enabled, amp_reason, autocast, channels_last_enabled, compile_enabled
from common.engine.state import EpochCursor, TrainState
from common.engine.timing import TIMINGS, summary, timed

log = logging.getLogger("prune")


class Trainer:
    """Runs one Job: resumes from its saved state when there is one, trains every phase, returns the state."""

    def __init__(self, job: Job, data: Dataset, device: torch.device, run, state_path: Path, bar=None):
        self.job, self.data, self.device, self.run, self.state_path = job, data, device, run, state_path
        self.bar = bar  # the stage's progress bar (one per stage), advanced once per step
        self.autocast = autocast(run.amp, device)

    def total_steps(self, phases: list[Phase] | None = None) -> int:
        """Optimizer steps of `phases` (default: all of the job's)."""
        n_train = len(self.data.train_labels)
        return sum(p.steps_per_epoch(n_train) * p.epochs for p in (self.job.phases if phases is None else phases))

    def steps_done(self, state: TrainState) -> int:
        """Steps a saved state has already run: its finished phases, epochs and batches."""
        done = self.total_steps(self.job.phases[:state.phase])
        if state.phase < len(self.job.phases):
            per_epoch = self.job.phases[state.phase].steps_per_epoch(len(self.data.train_labels))
            done += state.epoch * per_epoch + (state.cursor.batch if state.cursor else 0)
        return done

    def fit(self) -> TrainState:
        if self.state_path.is_file():
            state = TrainState.load(self.state_path, self.job, self.device)
            log.info("resuming %s from phase %d epoch %d", self.state_path.name, state.phase, state.epoch)
            if self.bar is not None:
                _skip(self.bar, self.steps_done(state))
        else:
            start = self.job.start or TrainState.fresh
            state = start(self.job, self.device)
            if self.bar is not None:  # a rewound state starts where its rewind point was taken
                _skip(self.bar, self.steps_done(state))
        configure_population(state.population, self.run, self.device)
        log.info("%s: %s", self.job.specs[0].pruning, execution_summary(self.run, self.device))
        before = TIMINGS.snapshot()
        with Signals() as signals:
            while state.phase < len(self.job.phases):
                PhaseRun(self, state, signals).run()
                state.next_phase()
                if state.phase < len(self.job.phases):
                    with timed("checkpoint"):
                        state.save(self.state_path, self.job)
        log.info("%s: time spent in %s", self.job.specs[0].pruning, summary(TIMINGS.since(before)))
        return state


def configure_population(pop: Population, run, device: torch.device) -> Population:
    """How `pop`'s members run under `run` (common.config.JobConfig's execution fields, each device's defaults)."""
    return pop.configure(run.population_execution, channels_last_enabled(run.channels_last, device),
                         compile_enabled(run.compile, device))


def execution_record(run, device: torch.device) -> dict:
    """What a checkpoint records of how its model ran (each of these changes the float rounding, so decides
    bit-identity): bf16 autocast, channels_last, torch.compile, member execution."""
    return dict(bf16_autocast=amp_enabled(run.amp, device), channels_last=channels_last_enabled(run.channels_last,
                device), compile=compile_enabled(run.compile, device), population_execution=run.population_execution)


def execution_summary(run, device: torch.device) -> str:
    """One line for the log: bf16 autocast and why, layout, compile, member execution."""
    on = {True: "on", False: "off"}
    return (f"{amp_reason(run.amp, device)}, channels_last {on[channels_last_enabled(run.channels_last, device)]}, "
            f"torch.compile {on[compile_enabled(run.compile, device)]}, members {run.population_execution}, "
            f"{torch.get_num_threads()} threads")


class PhaseRun:
    """One phase of one job: builds the optimizer (restoring a saved one), then runs its epochs step by step."""

    def __init__(self, trainer: Trainer, state: TrainState, signals: Signals):
        self.trainer, self.state, self.signals = trainer, state, signals
        self.job, self.data, self.state_path = trainer.job, trainer.data, trainer.state_path
        self.phase: Phase = self.job.phases[state.phase]
        self.pop = state.population
        state.optimizer, state.schedulers = build_optimizer([self.pop.params[n] for n in self.phase.trainable],
                                                            self.phase)
        state.restore_optimizer()
        # each population gets its own objective: one with state (a memory bank) must not leak between them
        self.objective = copy.deepcopy(self.phase.objective)
        self.objective.load_state_dict(state.objective_state.get(self.phase.name, {}))
        self.n_train = len(self.data.train_labels)
        self.per_epoch = self.phase.steps_per_epoch(self.n_train)
        self.batches = Batches(self.data, self.phase.augment, state.generators, trainer.device)
        self.hooks = self._hooks()
        self.cursor: EpochCursor | None = None

    def _hooks(self) -> list:
        hooks = [Snapshot(self.phase.snapshot_steps)] if self.phase.snapshot_steps else []
        if self.phase.gmp and any(t > 0 for t in self.job.final_sparsity):
            hooks.append(GMPEvents(self.phase.gmp, self.phase.prune_names, self.job.final_sparsity))
        return hooks + list(self.phase.hooks) + [History(self.trainer.run.eval_every, self.trainer.autocast),
                        Checkpoint(self.trainer.run.checkpoint_every), Preemption()]

    def run(self) -> None:
        for epoch in range(self.state.epoch, self.phase.epochs):
            # a run stopped mid-epoch resumes at its next batch with the same data order
            self.cursor = self.state.cursor or EpochCursor.start(self.state.generators, self.n_train)
            self.state.cursor = None
            self.alive = torch.tensor(self.state.alive, device=self.trainer.device)
            self.loss_sum = self.cursor.loss_sum.to(self.trainer.device)
            self.correct = self.cursor.correct.to(self.trainer.device)
            self.started = time.time()
            while self.cursor.batch < self.per_epoch:
                self.step(epoch * self.per_epoch + self.cursor.batch)
            self.end_epoch(epoch)

    def step(self, step: int) -> None:
        with timed("training steps"):
            self._step(step)

    def _step(self, step: int) -> None:
        self._hooks_at("before_step", step)
        b, size = self.cursor.batch, self.phase.batch_size
        idx = self.cursor.order[:, b * size:(b + 1) * size]
        optimizer = self.state.optimizer
        two_pass = getattr(optimizer, "needs_closure", False)  # SAM: a second pass on the same batch
        batches = Recorded(self.batches) if two_pass else self.batches
        losses, hits = self.backward(batches, idx)
        self.alive &= torch.isfinite(losses.detach())
        if two_pass:
            optimizer.step(lambda: self.backward(batches.replayed(), idx, frozen_statistics=True))
        else:
            optimizer.step()
        self.state.masks.apply_(self.pop.params)
        self.loss_sum += torch.where(self.alive, losses.detach(), torch.zeros_like(losses)) * idx.shape[1]
        if hits is not None:
            self.correct += hits
        self.cursor.batch += 1
        if self.trainer.bar is not None:
            self.trainer.bar.update(1)
        self._hooks_at("after_step", step)

    def backward(self, batches, idx: torch.Tensor, frozen_statistics: bool = False):
        """Every member's loss on its batch and its gradients, masked (and a failed member's zeroed). With
        `frozen_statistics` the BatchNorm running statistics are left as they were (SAM's second pass)."""
        saved = {k: v.clone() for k, v in self.pop.buffers.items()} if frozen_statistics else None
        with self.trainer.autocast:
            losses, hits = self.objective.losses(self.pop, batches, idx)
        alive = self.alive & torch.isfinite(losses.detach())
        self.state.optimizer.zero_grad(set_to_none=True)
        torch.where(alive, losses, torch.zeros_like(losses)).sum().backward()
        freeze_failed(self, alive)
        masks = self.state.masks
        grads = {n: self.pop.params[n].grad for n in masks if self.pop.params[n].grad is not None}
        masks.apply_(grads, names=grads)  # masked tensors this phase never touches have no gradient
        if saved is not None:
            for name, buffer in self.pop.buffers.items():
                buffer.copy_(saved[name])
        return losses, hits

    def end_epoch(self, epoch: int) -> None:
        for scheduler in self.state.schedulers:
            scheduler.step()
        self.epoch_seconds = self.cursor.seconds + time.time() - self.started
        self.state.epoch, self.state.alive = epoch + 1, self.alive.tolist()
        self._hooks_at("end_of_epoch", epoch)

    def _hooks_at(self, moment: str, when: int) -> None:
        """Run every hook that acts at `moment` ('before_step', 'after_step' or 'end_of_epoch'), in order."""
        for hook in self.hooks:
            if hasattr(hook, moment):
                getattr(hook, moment)(self, when)

    def epoch_means(self):
        """(train loss [P], train accuracy [P] or None) of the epoch that just ended."""
        accuracy = self.correct / self.n_train if self.objective.reports_accuracy else None
        return self.loss_sum / self.n_train, accuracy

    def save(self, with_cursor: bool = False) -> None:
        """Save the state; mid-epoch with the cursor, so the resumed run continues at the next batch."""
        self.state.alive = self.alive.tolist()
        if with_cursor:
            self.state.cursor = EpochCursor(self.cursor.order, self.cursor.batch, self.loss_sum.cpu(),
                                            self.correct.cpu(), self.cursor.seconds + time.time() - self.started)
        self.state.objective_state[self.phase.name] = self.objective.state_dict()
        with timed("checkpoint"):
            self.state.save(self.state_path, self.job)
        self.state.cursor = None


def _skip(bar, steps: int) -> None:
    """Advance the bar over steps a resumed run already did, without counting them in its rate (and ETA)."""
    if bar.disable:
        return
    bar.initial += steps
    bar.n += steps
    bar.last_print_n += steps
    bar.refresh()
