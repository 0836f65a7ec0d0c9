"""The training engine: one loop that trains a population through a list of phases.

A phase is one optimiser run: supervised training ('ce'), the SupCon encoder ('supcon'), the linear classifier
on the frozen encoder ('linear'), or finetuning after one-shot pruning ('ce' with fixed masks). Every member has
its own CPU generator (seeded by its seed) that draws its data order and augmentation parameters, so a member
trained inside a population follows exactly the trajectory it follows when trained alone.

Masks hold through training: gradients of pruned entries are zeroed before each step, and weights are
multiplied by their masks after it, so momentum and weight decay can never regrow them.
"""
from __future__ import annotations

import logging
import math
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch.func import vmap
from torch.utils._pytree import tree_map
from tqdm import tqdm

from common import checkpoint as ckpt
from common.augment import ContrastiveAugment, SupervisedAugment
from common.config import GMPWindow
from common.data import Dataset
from common.losses import SupConLoss
from common.models import part_of
from common.paths import ModelSpec, Paths
from common.population import Population
from common.pruning import apply_masks_, gmp_sparsity, magnitude_masks

log = logging.getLogger("prune")


class Preempted(Exception):
    """SIGTERM/SIGINT arrived: state was saved, the same command resumes."""

    def __init__(self, state_path, signum):
        self.state_path, self.signum = state_path, signum
        super().__init__(f"interrupted by signal {signum}: state saved to {state_path}; rerun the same command "
                         f"to resume")


@dataclass(frozen=True)
class Phase:
    name: str
    objective: str  # 'ce' | 'supcon' | 'linear'
    epochs: int
    batch_size: int
    learning_rate: float
    momentum: float
    weight_decay: float
    trainable: tuple  # names of the parameters this phase optimises
    augment: object  # SupervisedAugment | ContrastiveAugment
    nesterov: bool = False
    milestones: tuple = ()
    gamma: float = 0.1
    cosine: bool = False
    eta_min: float = 0.0
    prune_names: tuple = ()  # GMP pool, every tensor pruned to the same sparsity (the authors' layer-wise GMP)
    gmp: GMPWindow | None = None
    evaluate: bool = True
    temperature: float = 0.5
    base_temperature: float = 0.07

    def steps_per_epoch(self, n_train: int) -> int:
        return math.ceil(n_train / self.batch_size)


@dataclass
class Job:
    """Members to train together: their identities, initial networks, targets and phases."""

    specs: list[ModelSpec]
    phases: list[Phase]
    make_networks: Callable[[], list]  # -> list[Network], called only when not resuming
    recipe: dict  # plain config stored in every checkpoint
    fingerprint: str
    final_sparsity: list[float] = field(default_factory=list)  # GMP target per member
    initial_masks: dict | None = None  # stacked masks held from the start (finetuning)
    member_meta: list[dict] = field(default_factory=list)

    @property
    def run_name(self) -> str:
        seeds = "-".join(str(s.seed) for s in self.specs)
        import hashlib
        key = hashlib.sha1("|".join(s.name for s in self.specs).encode()).hexdigest()[:10]
        return f"{self.specs[0].pruning}_{self.fingerprint}_{key}_seeds{seeds[:40]}"


# ---- one step of each objective -------------------------------------------------------------------

def _batch(data: Dataset, idx: torch.Tensor, augment, generators, device) -> torch.Tensor:
    """Augmented, normalised images [P, B, C, H, W]; each member's parameters come from its own generator."""
    members, batch = idx.shape
    images = data.train_images[idx.reshape(-1).to(data.train_images.device)].to(device)
    params = [augment.sample(batch, data.image_size, g) for g in generators]
    stacked = {k: torch.cat([p[k] for p in params]) for k in params[0]}
    return data.normalize(augment.apply(images, stacked)).view(members, batch, *images.shape[1:])


def _two_view_batch(data, idx, augment, generators, device) -> torch.Tensor:
    """Two independent views per image: [P, 2B, ...], view 1 then view 2 (the authors' torch.cat order)."""
    first = _batch(data, idx, augment, generators, device)
    second = _batch(data, idx, augment, generators, device)
    return torch.cat([first, second], dim=1)


def _at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    """Losses in fp32 under bf16 autocast, but float64 kept (the equivalence tests run in float64)."""
    return t if t.dtype == torch.float64 else t.float()


def objective_losses(pop: Population, phase: Phase, data: Dataset, idx, generators, device):
    """Per-member mean loss [P] and per-member correct counts [P] (None for SupCon) for one batch."""
    labels = data.train_labels[idx.to(data.train_labels.device)].to(device)
    if phase.objective == "supcon":
        x = _two_view_batch(data, idx, phase.augment, generators, device)
        z = _at_least_fp32(pop(x, "projection"))
        batch = idx.shape[1]
        features = torch.stack([z[:, :batch], z[:, batch:]], dim=2)  # [P, B, 2, D]
        loss_fn = SupConLoss(phase.temperature, phase.base_temperature)
        return vmap(loss_fn)(features, labels), None
    x = _batch(data, idx, phase.augment, generators, device)
    if phase.objective == "linear":
        with torch.no_grad():
            pop.eval()
            features = _at_least_fp32(pop(x, "features"))
        weight, bias = pop.params["classifier.weight"], pop.params["classifier.bias"]
        logits = torch.einsum("pbd,pcd->pbc", features, _at_least_fp32(weight)) + _at_least_fp32(bias)[:, None]
    else:
        pop.train()
        logits = _at_least_fp32(pop(x, "logits"))
    losses = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view(labels.shape)
    return losses.mean(1), (logits.argmax(-1) == labels).sum(1)


@torch.no_grad()
def evaluate(pop: Population, images: torch.Tensor, labels: torch.Tensor, normalize, batch: int = 1024):
    """Test loss and accuracy per member, in the test set's fixed order."""
    pop.eval()
    device = pop.device
    loss = torch.zeros(pop.size, device=device)
    correct = torch.zeros(pop.size, device=device)
    for start in range(0, len(labels), batch):
        x = normalize(images[start:start + batch].to(device))
        y = labels[start:start + batch].to(device)
        logits = pop(x, "logits", shared_input=True).float()
        loss += F.cross_entropy(logits.flatten(0, 1), y.repeat(pop.size), reduction="none").view(pop.size, -1).sum(1)
        correct += (logits.argmax(-1) == y).sum(1)
    return (loss / len(labels)).cpu(), (correct / len(labels)).cpu()


@torch.no_grad()
def predict(pop: Population, images: torch.Tensor, normalize, mode: str = "logits", batch: int = 1024):
    """Member outputs over `images` in order, concatenated along examples: logits [P, N, C], features [P, N, D],
    or for mode='hidden' (features, [probe [P, N, d_l] for each probe])."""
    pop.eval()
    chunks = [pop(normalize(images[s:s + batch].to(pop.device)), mode, shared_input=True)
              for s in range(0, len(images), batch)]
    return tree_map(lambda *parts: torch.cat([p.float() for p in parts], dim=1), *chunks)


# ---- the loop ----------------------------------------------------------------------------------

class _Signals:
    """Turns SIGTERM/SIGINT into a flag checked between steps, so state is saved at a clean point."""

    def __init__(self):
        self.received = None

    def __enter__(self):
        self.previous = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def _handle(self, signum, frame):
        self.received = signum

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)


def _make_optimizer(pop: Population, phase: Phase):
    params = [pop.params[n] for n in phase.trainable]
    opt = torch.optim.SGD(params, lr=phase.learning_rate, momentum=phase.momentum,
                          weight_decay=phase.weight_decay, nesterov=phase.nesterov)
    schedulers = [torch.optim.lr_scheduler.MultiStepLR(opt, list(phase.milestones), phase.gamma)]
    if phase.cosine:  # the authors chain both schedulers on the classifier, each stepped every epoch
        schedulers.append(torch.optim.lr_scheduler.CosineAnnealingLR(opt, phase.epochs, phase.eta_min))
    return opt, schedulers


def _prune_event(pop, phase, opt, masks, targets, step):
    """Recompute the GMP masks of this phase's pool at `step` and zero pruned weights and their momentum."""
    window = phase.gmp
    sparsity = [gmp_sparsity(step, s, window.begin_step, window.end_step) for s in targets]
    pool = {n: pop.params[n] for n in phase.prune_names}
    masks.update(magnitude_masks(pool, sparsity, scope="layer", masks=masks))
    _hold_masks(pop, opt, masks)


def _hold_masks(pop, opt, masks):
    apply_masks_(pop.params, masks)
    for name, mask in masks.items():
        buf = opt.state.get(pop.params[name], {}).get("momentum_buffer")
        if buf is not None:
            buf.mul_(mask.to(buf.dtype))


class Trainer:
    """Runs one Job: resumes from saved state, trains every phase, saves every member."""

    def __init__(self, job: Job, data: Dataset, device: torch.device, paths: Paths, run, method: str):
        self.job, self.data, self.device, self.paths, self.run = job, data, device, paths, run
        self.method = method
        self.state_path = paths.run_state(data.name, method, job.run_name)
        self.autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and run.amp
                         else nullcontext())

    # -- state --
    def _fresh_state(self):
        networks = self.job.make_networks()
        pop = Population(networks, self.device)
        generators = [torch.Generator().manual_seed(spec.seed) for spec in self.job.specs]
        masks = {k: v.to(self.device) for k, v in (self.job.initial_masks or {}).items()}
        apply_masks_(pop.params, masks)
        return dict(pop=pop, generators=generators, masks=masks, phase=0, epoch=0, opt=None, sched=None,
                    history=[], alive=[True] * pop.size, failed_states={})

    def _load_state(self, networks_template):
        saved = ckpt.load_state(self.state_path)
        if saved.get("fingerprint") != self.job.fingerprint or saved.get("specs") != [s.name for s in self.job.specs]:
            raise ckpt.CheckpointError(f"resume state {self.state_path} belongs to another configuration: delete it "
                                       f"to start that population from scratch")
        pop = Population(networks_template, self.device)
        for k in pop.params:
            pop.params[k].data.copy_(saved["params"][k])
        for k in pop.buffers:
            pop.buffers[k].copy_(saved["buffers"][k])
        generators = []
        for g_state in saved["generators"]:
            g = torch.Generator()
            g.set_state(g_state)
            generators.append(g)
        masks = {k: v.to(self.device) for k, v in saved["masks"].items()}
        return dict(pop=pop, generators=generators, masks=masks, phase=saved["phase"], epoch=saved["epoch"],
                    opt=saved["optimizer"], sched=saved["schedulers"], history=saved["history"],
                    alive=saved["alive"], failed_states=saved.get("failed_states", {}), cursor=saved.get("cursor"))

    def _save_state(self, s, opt, schedulers):
        pop = s["pop"]
        ckpt.save_state(self.state_path, dict(
            fingerprint=self.job.fingerprint, specs=[sp.name for sp in self.job.specs],
            params={k: v.detach().cpu() for k, v in pop.params.items()},
            buffers={k: v.cpu() for k, v in pop.buffers.items()},
            masks={k: v.cpu() for k, v in s["masks"].items()},
            generators=[g.get_state() for g in s["generators"]],
            optimizer=None if opt is None else _cpu(opt.state_dict()),
            schedulers=None if opt is None else [sc.state_dict() for sc in schedulers],
            phase=s["phase"], epoch=s["epoch"], history=s["history"], alive=s["alive"],
            failed_states=s["failed_states"], cursor=s.get("cursor")))

    # -- loop --
    def fit(self) -> list[dict]:
        resuming = self.state_path.is_file()
        if resuming:
            s = self._load_state(self.job.make_networks())
            log.info("resuming %s from phase %d epoch %d", self.state_path.name, s["phase"], s["epoch"])
        else:
            s = self._fresh_state()
        if self.run.compile and self.device.type == "cuda":
            s["pop"].compile()
        with _Signals() as signals:
            while s["phase"] < len(self.job.phases):
                self._run_phase(s, self.job.phases[s["phase"]], signals)
                s["phase"], s["epoch"], s["opt"], s["sched"] = s["phase"] + 1, 0, None, None
                if s["phase"] < len(self.job.phases):
                    self._save_state(s, None, None)
        results = self._save_members(s)
        self.state_path.unlink(missing_ok=True)
        return results

    def _run_phase(self, s, phase: Phase, signals):
        pop, generators, masks = s["pop"], s["generators"], s["masks"]
        opt, schedulers = _make_optimizer(pop, phase)
        if s["opt"] is not None:
            opt.load_state_dict(s["opt"])
            for sc, sc_state in zip(schedulers, s["sched"]):
                sc.load_state_dict(sc_state)
        n_train = len(self.data.train_labels)
        per_epoch = phase.steps_per_epoch(n_train)
        events = set(phase.gmp.events()) if phase.gmp and any(t > 0 for t in self.job.final_sparsity) else set()
        phase_masks = {n: m for n, m in masks.items()}
        alive = torch.tensor(s["alive"], device=self.device)
        label = f"{self.job.specs[0].pruning} s={self.job.specs[0].sparsity:g} x{pop.size} {phase.name}"
        bar = tqdm(total=phase.epochs * per_epoch, initial=s["epoch"] * per_epoch, desc=label,
                   disable=not self.run.progress, leave=False, dynamic_ncols=True)
        for epoch in range(s["epoch"], phase.epochs):
            # a run stopped mid-epoch resumes at its next batch with the same data order
            cursor = s.pop("cursor", None) or dict(
                order=torch.stack([torch.randperm(n_train, generator=g) for g in generators]), batch=0,
                loss_sum=torch.zeros(pop.size), correct=torch.zeros(pop.size), seconds=0.0)
            started = time.time()
            loss_sum, correct = cursor["loss_sum"].to(self.device), cursor["correct"].to(self.device)
            for b in range(cursor["batch"], per_epoch):
                step = epoch * per_epoch + b
                if step in events:
                    _prune_event(pop, phase, opt, phase_masks, self.job.final_sparsity, step)
                idx = cursor["order"][:, b * phase.batch_size:(b + 1) * phase.batch_size]
                with self.autocast:
                    losses, hits = objective_losses(pop, phase, self.data, idx, generators, self.device)
                alive &= torch.isfinite(losses.detach())
                opt.zero_grad(set_to_none=True)
                torch.where(alive, losses, torch.zeros_like(losses)).sum().backward()
                self._freeze_dead(s, phase, alive)
                grads = {n: pop.params[n].grad for n in phase_masks if pop.params[n].grad is not None}
                apply_masks_(grads, {n: phase_masks[n] for n in grads})  # masked tensors this phase never touched
                opt.step()
                apply_masks_(pop.params, phase_masks)
                loss_sum += torch.where(alive, losses.detach(), torch.zeros_like(losses)) * idx.shape[1]
                if hits is not None:
                    correct += hits
                bar.update(1)
                if signals.received and b + 1 < per_epoch:
                    masks.update(phase_masks)
                    s["alive"] = alive.tolist()
                    s["cursor"] = dict(order=cursor["order"], batch=b + 1, loss_sum=loss_sum.cpu(),
                                       correct=correct.cpu(), seconds=cursor["seconds"] + time.time() - started)
                    self._save_state(s, opt, schedulers)
                    bar.close()
                    raise Preempted(self.state_path, signals.received)
            for sc in schedulers:
                sc.step()
            masks.update(phase_masks)
            seconds = cursor["seconds"] + time.time() - started
            self._record(s, phase, epoch, opt, loss_sum / n_train, correct / n_train if phase.objective != "supcon"
                         else None, seconds, alive)
            s["epoch"], s["alive"] = epoch + 1, alive.tolist()
            if signals.received or (epoch + 1) % max(1, self.run.checkpoint_every) == 0 and epoch + 1 < phase.epochs:
                self._save_state(s, opt, schedulers)
            if signals.received:
                bar.close()
                raise Preempted(self.state_path, signals.received)
        bar.close()

    def _freeze_dead(self, s, phase, alive):
        """A member whose loss turned NaN/inf gets no further updates; its last good state is kept."""
        if bool(alive.all()):
            return
        pop = s["pop"]
        for i in (~alive).nonzero().flatten().tolist():
            name = self.job.specs[i].name
            if name not in s["failed_states"]:
                log.error("%s: loss is not finite in phase %s; member stopped, last good state kept", name, phase.name)
                s["failed_states"][name] = {k: v.cpu() for k, v in pop.member_state(i).items()}
        for name in phase.trainable:
            grad = pop.params[name].grad
            if grad is not None:
                grad.mul_(alive.view(-1, *[1] * (grad.dim() - 1)).to(grad.dtype)).nan_to_num_(0.0, 0.0, 0.0)

    def _record(self, s, phase, epoch, opt, train_loss, train_acc, seconds, alive):
        test_loss, test_acc = (None, None)
        last = epoch + 1 == phase.epochs
        if phase.evaluate and (last or (epoch + 1) % max(1, self.run.eval_every) == 0):
            with self.autocast:
                test_loss, test_acc = evaluate(s["pop"], self.data.test_images, self.data.test_labels,
                                               self.data.normalize)
        for i, spec in enumerate(self.job.specs):
            s["history"].append(dict(
                model=spec.name, phase=phase.name, epoch=epoch, lr=opt.param_groups[0]["lr"],
                train_loss=float(train_loss[i]), train_accuracy=None if train_acc is None else float(train_acc[i]),
                test_loss=None if test_loss is None else float(test_loss[i]),
                test_accuracy=None if test_acc is None else float(test_acc[i]),
                sparsity=_member_sparsity(s["masks"], i), seconds=seconds, failed=not bool(alive[i])))
        mean_acc = "" if test_acc is None else f" test acc {float(test_acc.mean()):.4f}"
        log.info("%s %s epoch %d/%d loss %.4f%s", self.job.specs[0].pruning, phase.name, epoch + 1, phase.epochs,
                 float(train_loss.mean()), mean_acc)

    # -- outputs --
    def _save_members(self, s) -> list[dict]:
        from common.plots import write_history

        pop, masks = s["pop"], s["masks"]
        results = []
        final = [r for r in s["history"] if r["test_accuracy"] is not None]
        for i, spec in enumerate(self.job.specs):
            rows = [r for r in s["history"] if r["model"] == spec.name]
            accuracy = next((r["test_accuracy"] for r in reversed(final) if r["model"] == spec.name), None)
            failed = not s["alive"][i]
            member_masks = {k: v[i] for k, v in masks.items()}
            if all(bool(m.all()) for m in member_masks.values()):
                member_masks = {}  # a dense member of a mixed population is stored like one trained alone
            meta = dict(spec=vars(spec), config=self.job.recipe, fingerprint=self.job.fingerprint,
                        test_accuracy=accuracy, sparsity=_member_sparsity(masks, i),
                        layer_sparsity={k: float((~m).float().mean()) for k, m in member_masks.items()},
                        epochs={p.name: p.epochs for p in self.job.phases}, failed=failed,
                        versions=ckpt.library_versions(), **(self.job.member_meta[i] if self.job.member_meta else {}))
            write_history(rows, self.paths.metrics_csv(spec), self.paths.curves_png(spec))
            if failed:
                path = self.paths.failed_checkpoint(spec)
                ckpt.save_model(path, s["failed_states"][spec.name], meta, member_masks)
                log.error("%s failed (non-finite loss): last good state in %s, not a finished model", spec.name, path)
            else:
                save_member(self.paths, spec, pop.member_state(i), member_masks, meta)
            results.append(meta)
        return results


def save_member(paths: Paths, spec: ModelSpec, state: dict, masks: dict, meta: dict) -> None:
    """Write a finished member: one file, or encoder + classifier for SupCon (classifier last, so a model counts
    as finished only when both exist)."""
    for part in spec.parts:
        keep = (lambda k: True) if part == "model" else (lambda k, p=part: part_of(k) == p)
        ckpt.save_model(paths.checkpoint(spec, part), {k: v for k, v in state.items() if keep(k)},
                        {**meta, "part": part}, {k: m for k, m in masks.items() if keep(k)})


def _member_sparsity(masks: dict, i: int) -> float:
    if not masks:
        return 0.0
    pruned = sum(int((~m[i]).sum()) for m in masks.values())
    return pruned / sum(m[i].numel() for m in masks.values())


def _cpu(obj):
    if torch.is_tensor(obj):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_cpu(v) for v in obj]
    return obj
