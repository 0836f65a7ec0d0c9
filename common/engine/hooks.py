"""What happens around the steps of a phase, composed as hooks (as open_lth's callbacks): GMP pruning events,
rewind snapshots, evaluation and history, periodic checkpoints, and preemption. A hook implements any of
`before_step(run, step)`, `after_step(run, step)` and `end_of_epoch(run, epoch)`; `run` is the PhaseRun."""
from __future__ import annotations

import logging
import signal

import torch

from common.engine.inference import evaluate
from common.engine.timing import timed
from common.errors import Preempted
from common.metrics.natural_sparsity import natural_sparsity
from common.pruning.criteria import magnitude_masks
from common.pruning.gmp import GMPWindow, gmp_sparsity

log = logging.getLogger("prune")


class Signals:
    """Turns SIGTERM/SIGINT (and SIGUSR2, Slurm's warning before a time limit) into a flag checked between steps,
    so state is saved at a clean point."""

    def __init__(self):
        self.received = None

    def __enter__(self):
        self.previous = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)}
        return self

    def _handle(self, signum, frame):
        self.received = signum

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)


class GMPEvents:
    """Zhu & Gupta's gradual pruning: at each event step, the pool is pruned to the schedule's sparsity for its
    member's final target, every tensor to that sparsity (scope 'layer', Corti et al.'s choice) or the pool as a
    whole ('global'), and pruned weights and their momentum are zeroed."""

    def __init__(self, window: GMPWindow, pool: tuple, targets: list[float], scope: str = "layer"):
        self.window, self.pool, self.targets, self.scope = window, pool, targets, scope
        self.events = set(window.events())

    def before_step(self, run, step: int) -> None:
        if step not in self.events:
            return
        with timed("GMP pruning"):
            sparsity = [gmp_sparsity(step, s, self.window.begin_step, self.window.end_step) for s in self.targets]
            pool = {n: run.pop.params[n] for n in self.pool}
            run.state.masks.update(magnitude_masks(pool, sparsity, scope=self.scope, masks=run.state.masks))
            run.state.masks.hold(run.pop.params, run.state.optimizer)


class Snapshot:
    """Keep a rewind point of every member before `step` of the phase (step 0 is the initialisation, one epoch is
    steps_per_epoch) in the state, under '<phase>@<step>': weights and buffers, and where the run stood (each
    member's generator, the epoch's data order and batch, the epoch, the objective's own state such as NPID's memory
    bank), so that a later run can continue from there with other masks (IMP's late rewinding; `rewound_state`)."""

    def __init__(self, steps: tuple):
        self.steps = set(steps)

    def before_step(self, run, step: int) -> None:
        key = f"{run.phase.name}@{step}"
        if step in self.steps and key not in run.state.snapshots:
            tensors = {**run.pop.params, **run.pop.buffers}
            run.state.snapshots[key] = dict(
                tensors={n: t.detach().cpu().clone() for n, t in tensors.items()},
                generators=[g.get_state() for g in run.state.generators], order=run.cursor.order.clone(),
                batch=run.cursor.batch, epoch=run.state.epoch, phase=run.state.phase,
                objective={n: t.detach().cpu().clone() for n, t in run.objective.state_dict().items()})


class NaturalSparsity:
    """Caron et al.'s natural sparsity, tracked: at the initialisation and after every epoch, the fraction of each
    member's weights of `pool` below each threshold (common.metrics.natural_sparsity), per layer and over the pool
    ('all'), as rows of the state's 'natural_sparsity' record (saved with the state, written beside each model's
    metrics); `epoch` counts the epochs done (0: the initialisation)."""

    def __init__(self, pool: tuple):
        self.pool = pool

    def before_step(self, run, step: int) -> None:
        if step == 0:
            self._record(run, 0)

    def end_of_epoch(self, run, epoch: int) -> None:
        self._record(run, epoch + 1)

    def _record(self, run, epochs_done: int) -> None:
        fractions = natural_sparsity({name: run.pop.params[name] for name in self.pool})
        rows = run.state.records.setdefault("natural_sparsity", [])
        for i, spec in enumerate(run.job.specs):
            rows += [dict(model=spec.name, epoch=epochs_done, layer=layer, threshold=threshold,
                          fraction=float(value[i])) for (layer, threshold), value in fractions.items()]


class History:
    """Per-epoch metrics of every member (test loss and accuracy every `eval_every` epochs and at the end)."""

    def __init__(self, eval_every: int, autocast):
        self.eval_every, self.autocast = max(1, eval_every), autocast

    def end_of_epoch(self, run, epoch: int) -> None:
        phase, state = run.phase, run.state
        test_loss = test_acc = None
        if phase.evaluate and (epoch + 1 == phase.epochs or (epoch + 1) % self.eval_every == 0):
            with self.autocast:
                test_loss, test_acc = evaluate(run.pop, run.data.test_images, run.data.test_labels,
                                               run.data.normalize)
        train_loss, train_acc = run.epoch_means()
        lr = state.optimizer.param_groups[0]["lr"]
        for i, spec in enumerate(run.job.specs):
            state.history.append(dict(
                model=spec.name, phase=phase.name, epoch=epoch, lr=lr, train_loss=float(train_loss[i]),
                train_accuracy=None if train_acc is None else float(train_acc[i]),
                test_loss=None if test_loss is None else float(test_loss[i]),
                test_accuracy=None if test_acc is None else float(test_acc[i]),
                sparsity=state.masks.member_sparsity(i), seconds=run.epoch_seconds, failed=not state.alive[i]))
        mean_acc = "" if test_acc is None else f" test acc {float(test_acc.mean()):.4f}"
        log.info("%s %s epoch %d/%d loss %.4f%s", run.job.specs[0].pruning, phase.name, epoch + 1, phase.epochs,
                 float(train_loss.mean()), mean_acc)


class Checkpoint:
    """Save the state every `every` epochs (not after a phase's last epoch: the next phase saves)."""

    def __init__(self, every: int):
        self.every = max(1, every)

    def end_of_epoch(self, run, epoch: int) -> None:
        if (epoch + 1) % self.every == 0 and epoch + 1 < run.phase.epochs and not run.signals.received:
            run.save()


class Preemption:
    """On SIGTERM/SIGINT: save at the next batch boundary (mid-epoch, with the cursor) and stop."""

    def after_step(self, run, step: int) -> None:
        if run.signals.received and run.cursor.batch < run.per_epoch:
            run.save(with_cursor=True)
            raise Preempted(run.state_path, run.signals.received)

    def end_of_epoch(self, run, epoch: int) -> None:
        if run.signals.received:
            run.save()
            raise Preempted(run.state_path, run.signals.received)


def freeze_failed(run, alive: torch.Tensor) -> None:
    """A member whose loss turned NaN/inf gets no further updates; its last good state is kept."""
    if bool(alive.all()):
        return
    pop, state = run.pop, run.state
    for i in (~alive).nonzero().flatten().tolist():
        name = run.job.specs[i].name
        if name not in state.failed_states:
            log.error("%s: loss is not finite in phase %s; member stopped, last good state kept", name, run.phase.name)
            state.failed_states[name] = {k: v.cpu() for k, v in pop.member_state(i).items()}
    for name in run.phase.trainable:
        grad = pop.params[name].grad
        if grad is not None:
            grad.mul_(alive.view(-1, *[1] * (grad.dim() - 1)).to(grad.dtype)).nan_to_num_(0.0, 0.0, 0.0)
