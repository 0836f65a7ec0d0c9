"""`sup_training.py` / `clr_training.py`: train populations, dense or with gradual magnitude pruning.

Models `--index_start..--index_end` (seed = index) are trained for every sparsity in `--pruning_percentages`
(0.0 = dense). Members of all requested sparsities are packed into populations of `--population_size` that
train together; every member is saved as an ordinary per-model checkpoint.
"""
from __future__ import annotations

import logging
import math
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from common import checkpoint as ckpt, preflight
from common.augment import ContrastiveAugment, SupervisedAugment
from common.cli import OneLineParser, UsageError, add_config_args, given_values, select_device
from common.config import RunConfig, TrainConfig, preset_config, pruning_name, resolve_gmp
from common.data import load_dataset
from common.models import build_network
from common.paths import REPO_ROOT, ModelSpec, Paths
from common.plots import write_table
from common.pruning import prunable_names
from common.training import Job, Phase, Trainer

log = logging.getLogger("prune")


# ---- phases --------------------------------------------------------------------------------------

def encoder_conv_names(network) -> list[str]:
    return prunable_names(network, exclude=("classifier", "projection"))


def build_phases(cfg: TrainConfig, n_train: int, network, image_size: int = 32) -> list[Phase]:
    """The paper's recipe as phases. Supervised: one CE phase, GMP over every conv weight plus the classifier's
    weight and bias. SupCon: the encoder with the SupCon loss (GMP over its convs), then the linear classifier on
    the frozen encoder with CE (its own GMP over weight and bias), as the authors' clr_training.py."""
    names = [n for n, _ in network.named_parameters()]
    classifier = ["classifier.weight", "classifier.bias"]
    # RandomCrop(32, padding=4) on CIFAR; the padding keeps that 1/8 ratio on other image sizes
    supervised_aug = SupervisedAugment(padding=image_size // 8, vertical_flip=0.5 if cfg.vertical_flip else 0.0)
    sgd = dict(momentum=cfg.momentum)
    if cfg.method == "supervised":
        steps = math.ceil(n_train / cfg.batch_size) * cfg.epochs
        window = resolve_gmp("supervised", cfg.gmp_schedule, steps, (cfg.begin_step, cfg.end_step, cfg.frequency))
        return [Phase("train", "ce", cfg.epochs, cfg.batch_size, cfg.learning_rate, weight_decay=cfg.weight_decay,
                      trainable=tuple(names), augment=supervised_aug, nesterov=cfg.nesterov,
                      milestones=cfg.lr_milestones, gamma=cfg.lr_gamma,
                      prune_names=tuple(encoder_conv_names(network) + classifier), gmp=window, **sgd)]
    steps = math.ceil(n_train / cfg.batch_size) * cfg.epochs
    window = resolve_gmp("supcon", cfg.gmp_schedule, steps, (cfg.begin_step, cfg.end_step, cfg.frequency))
    head_steps = math.ceil(n_train / cfg.batch_size_head) * cfg.head_epochs
    head_window = resolve_gmp("supcon", "head", head_steps,
                              (cfg.begin_step_head, cfg.end_step_head, cfg.frequency_head))
    encoder = Phase("encoder", "supcon", cfg.epochs, cfg.batch_size, cfg.learning_rate,
                    weight_decay=cfg.weight_decay, trainable=tuple(n for n in names if n not in classifier),
                    augment=ContrastiveAugment(), nesterov=cfg.nesterov, milestones=cfg.lr_milestones,
                    gamma=cfg.lr_gamma, prune_names=tuple(encoder_conv_names(network)), gmp=window, evaluate=False,
                    temperature=cfg.temperature, base_temperature=cfg.base_temperature, **sgd)
    head = Phase("head", "linear", cfg.head_epochs, cfg.batch_size_head, cfg.learning_rate_head, weight_decay=0.0,
                 trainable=tuple(classifier), augment=supervised_aug, milestones=cfg.head_milestones,
                 gamma=cfg.head_gamma, cosine=cfg.head_cosine, eta_min=cfg.head_eta_min,
                 prune_names=tuple(classifier), gmp=head_window, **sgd)
    return [encoder, head]


# ---- validation ----------------------------------------------------------------------------------

def validate(cfg: TrainConfig, run: RunConfig, phases: list[Phase], n_train: int) -> None:
    bad = [s for s in run.pruning_percentages if not 0.0 <= s < 1.0]
    if bad or not run.pruning_percentages:
        raise UsageError(f"--pruning_percentages {bad or 'is empty'}: sparsities must lie in [0, 1), e.g. 0.0,0.5,0.9")
    if run.index_start < 0 or run.index_start > run.index_end:
        raise UsageError(f"--index_start {run.index_start} --index_end {run.index_end}: need 0 <= start <= end")
    if run.population_size < 0:
        raise UsageError(f"--population_size {run.population_size}: use 0 (auto), 1, or more")
    for phase in phases:
        if phase.epochs < 1 or phase.batch_size < 1:
            raise UsageError(f"{phase.name}: epochs and batch sizes must be >= 1")
        if not any(s > 0 for s in run.pruning_percentages):
            continue
        window, last = phase.gmp, phase.steps_per_epoch(n_train) * phase.epochs - 1
        flags = "--begin_step_head/--end_step_head" if phase.objective == "linear" else "--begin_step/--end_step"
        if window.begin_step < 0 or window.begin_step >= window.end_step:
            raise UsageError(f"{flags} {window.begin_step}/{window.end_step}: the begin step must be >= 0 and "
                             f"< the end step")
        if window.end_step > last:
            raise UsageError(f"{flags}: end step {window.end_step} is past this run's last step {last} "
                             f"({phase.epochs} epochs x {phase.steps_per_epoch(n_train)} steps); lower it")
        if window.frequency < 1:
            raise UsageError(f"GMP frequency {window.frequency}: must be >= 1")


def finished_or_conflict(paths: Paths, spec: ModelSpec, fingerprint: str) -> bool:
    """True when the model is already trained with this recipe; an error when it was trained with another."""
    files = paths.checkpoints(spec)
    if not all(p.is_file() for p in files):
        return False
    for path in files:
        meta = ckpt.read_meta(path)
        if meta.get("fingerprint") != fingerprint:
            raise UsageError(f"{path} exists with another recipe (fingerprint {meta.get('fingerprint')} != "
                             f"{fingerprint}): move it away or use another --output_root; it is never overwritten")
    return True


def default_population_size(device: torch.device) -> int:
    return 32 if device.type == "cuda" else 8


# ---- logging and summaries -----------------------------------------------------------------------

class _TqdmHandler(logging.StreamHandler):
    def emit(self, record):
        from tqdm import tqdm
        tqdm.write(self.format(record), file=sys.stderr)


def setup_logging(log_file: Path) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("prune")
    logger.setLevel(logging.INFO)
    for old in [h for h in logger.handlers if getattr(h, "ours", False)]:  # a previous stage's file and console
        logger.removeHandler(old)
        old.close()
    logger.propagate = False  # libraries that configure the root logger would print every line twice
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    for handler in (logging.FileHandler(log_file), _TqdmHandler()):
        handler.setFormatter(fmt)
        handler.ours = True
        logger.addHandler(handler)


def models_table(paths: Paths, dataset: str, method: str) -> pd.DataFrame:
    """One row per finished model on disk (read from checkpoint metadata): loadable with pandas."""
    rows = []
    part = "model" if method == "supervised" else "classifier"
    pattern = "*.safetensors" if part == "model" else "*_classifier.safetensors"
    for path in sorted(paths.model_dir(dataset, method).glob(pattern)):
        try:
            meta = ckpt.read_meta(path)
        except ckpt.CheckpointError as err:
            log.warning("skipping %s", err)
            continue
        rows.append(dict(**meta["spec"], test_accuracy=meta.get("test_accuracy"), measured_sparsity=meta.get("sparsity"),
                         accuracy_after_pruning=meta.get("accuracy_after_pruning"), file=path.name))
    return pd.DataFrame(rows)


# ---- entry point -------------------------------------------------------------------------------

def parse(method: str, argv=None) -> tuple[TrainConfig, RunConfig]:
    parser = OneLineParser(description=__doc__.splitlines()[0], prog=f"{'sup' if method == 'supervised' else 'clr'}"
                                                                      f"_training.py")
    add_config_args(parser, TrainConfig)
    add_config_args(parser, RunConfig)
    args = parser.parse_args(argv)
    run = RunConfig(**given_values(args, RunConfig))
    cfg = preset_config(method, run.preset, **given_values(args, TrainConfig))
    return cfg, run


def main(method: str, argv=None) -> list[dict]:
    cfg, run = parse(method, argv)
    paths = Paths(Path(run.output_root) if run.output_root else REPO_ROOT)
    data = load_dataset(cfg.dataset, run.data_dir)
    n_train = len(data.train_labels)
    template = build_network(cfg.arch, method, data.num_classes, cfg.projection_dim)
    phases = build_phases(cfg, n_train, template, data.image_size)
    validate(cfg, run, phases, n_train)

    specs = [ModelSpec(method, cfg.arch, cfg.dataset, pruning_name(cfg, s), s, seed)
             for s in run.pruning_percentages for seed in range(run.index_start, run.index_end + 1)]
    fingerprint = cfg.fingerprint()
    todo = [s for s in specs if not finished_or_conflict(paths, s, fingerprint)]
    preflight.check_outputs([paths.model_dir(cfg.dataset, method), paths.log_dir(cfg.dataset, method)],
                            preflight.training_bytes(template, len(todo)))
    device = select_device(run.cuda_device)
    setup_logging(paths.log_file(cfg.dataset, method, "training"))
    log.info("%s training: %d models asked, %d already finished, device %s", method, len(specs),
             len(specs) - len(todo), device)
    log.info("recipe %s: %s", fingerprint, cfg.to_dict())
    data = data.to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    size = run.population_size or default_population_size(device)
    results = []
    for start in range(0, len(todo), size):
        chunk = todo[start:start + size]
        job = Job(specs=chunk, phases=phases, recipe=cfg.to_dict(), fingerprint=fingerprint,
                  final_sparsity=[s.sparsity for s in chunk],
                  make_networks=lambda chunk=chunk: [_seeded_network(cfg, method, data.num_classes, s.seed)
                                                    for s in chunk])
        started = time.time()
        results += Trainer(job, data, device, paths, run, method).fit()
        log.info("trained %d models (%s) in %.1fs", len(chunk), ", ".join(s.name for s in chunk),
                 time.time() - started)
    table = models_table(paths, cfg.dataset, method)
    if not table.empty:
        write_table(table, paths.log_dir(cfg.dataset, method) / "models.csv")
    for r in results:
        acc = r["test_accuracy"]
        log.info("%s: test accuracy %s, sparsity %.4f%s", _name(r),
                 "n/a" if acc is None else f"{acc:.4f}", r["sparsity"], " FAILED" if r["failed"] else "")
    return results


def _name(meta: dict) -> str:
    return ModelSpec(**meta["spec"]).name


def _seeded_network(cfg: TrainConfig, method: str, num_classes: int, seed: int):
    torch.manual_seed(seed)
    return build_network(cfg.arch, method, num_classes, cfg.projection_dim)
