"""Typed configuration: the training recipe (what defines a model) and the run (where and how it executes).

A model's recipe is the fields that shape it (`TrainConfig.recipe(sparsity)`: SupCon-only fields only for SupCon
models, the GMP window only for pruned ones; see common.recipe), stored with its fingerprint in every checkpoint; a
rerun that finds a finished model of another recipe refuses to overwrite it and names the fields that differ.
Presets fill the config; flags override presets.

Paper preset = the authors' code defaults (../shared/docs/paper_recipe.md A.4-A.5). Where their code is silent
(SupCon early GMP, supervised late GMP) our choice is marked [ours] and explained in the README's fidelity notes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from common.config import (AT_LEAST_ONE, DISTINCT, JOB_RULES, MILESTONES, MOMENTUM, NON_NEGATIVE, POSITIVE, JobConfig,
                           help_field, with_dataset_defaults)
from common.data import DATASETS as DATASET_REGISTRY
from common.models import ENCODERS
from common.pruning.gmp import GMPWindow
from common.recipe import shaping

ARCHS = tuple(ENCODERS)
DATASETS = tuple(DATASET_REGISTRY)
METHODS = ("supervised", "supcon")
SUPCON = ("supcon",)  # a field only SupCon models have: clr_ scripts offer it, sup_ scripts do not
# the named GMP windows (GMP_REFERENCE; each a pruning name gmp_<name>, common.studies.corti2022.commands)
GMP_SCHEDULES = ("early", "late")


@dataclass(frozen=True)
class TrainConfig:
    """The recipe of one population. Defaults are the paper preset for supervised training."""

    method: str = help_field("supervised", "learning method: supervised (cross-entropy) or supcon", cli=False)
    dataset: str = help_field("cifar10", f"dataset: one of {DATASETS}", choices=DATASETS)
    arch: str = help_field("wrn16_2", f"encoder architecture: one of {ARCHS}", choices=ARCHS)
    epochs: int = help_field(205, "training epochs (SupCon: encoder epochs)")
    batch_size: int = help_field(128, "training batch size (SupCon: images per batch, two views each)")
    learning_rate: float = help_field(1.0, "initial SGD learning rate")
    momentum: float = help_field(0.9, "SGD momentum")
    weight_decay: float = help_field(5e-4, "SGD weight decay")
    nesterov: bool = help_field(False, "use Nesterov momentum")
    lr_milestones: tuple = help_field((5, 30, 50, 80), "epochs at which the learning rate is multiplied by lr_gamma",
                                      nargs="*", item=int)
    lr_gamma: float = help_field(0.1, "learning-rate decay factor at each milestone")
    vertical_flip: bool | None = help_field(None, "RandomVerticalFlip(0.5) in the supervised augmentation; none = "
                                                  "the dataset's (cifar10: on, as the authors; digits, fashion_mnist: "
                                                  "off)")
    train_subset: int = help_field(0, "train on a seeded, class-balanced subset of this many training examples; "
                                      "0 = all", omit_default=True)
    # SupCon encoder and linear head
    temperature: float = help_field(0.5, "SupCon temperature", methods=SUPCON)
    base_temperature: float = help_field(0.07, "SupCon base temperature (the loss is scaled by T/base_T)",
                                         methods=SUPCON)
    projection_dim: int = help_field(128, "SupCon projection head output size", methods=SUPCON)
    head_epochs: int = help_field(100, "SupCon linear classifier epochs on the frozen encoder", methods=SUPCON)
    batch_size_head: int = help_field(256, "SupCon linear classifier batch size", methods=SUPCON)
    learning_rate_head: float = help_field(0.1, "SupCon linear classifier learning rate", methods=SUPCON)
    head_milestones: tuple = help_field((60, 75, 90), "SupCon classifier lr milestones (epochs)", nargs="*", item=int,
                                        methods=SUPCON)
    head_gamma: float = help_field(0.2, "SupCon classifier lr decay at each milestone", methods=SUPCON)
    head_cosine: bool = help_field(True, "chain CosineAnnealingLR(T_max=head_epochs) with the milestones, as the "
                                         "authors", methods=SUPCON)
    head_eta_min: float = help_field(1e-4, "minimum lr of the classifier's cosine schedule", methods=SUPCON)
    # Gradual magnitude pruning (Zhu & Gupta), steps count optimizer updates from 0
    gmp_schedule: str = help_field("early", "named GMP schedule used for sparsities > 0: early or late",
                                   choices=GMP_SCHEDULES, only_if="pruned")
    begin_step: int | None = help_field(None, "GMP begin step; none = the named schedule's, scaled to this run",
                                        only_if="pruned")
    end_step: int | None = help_field(None, "GMP end step (sparsity is exactly final from here on); none = the "
                                            "named schedule's", only_if="pruned")
    frequency: int | None = help_field(None, "GMP: steps between pruning events; none = the named schedule's",
                                       only_if="pruned")
    begin_step_head: int | None = help_field(None, "SupCon classifier GMP begin step; none = the authors', scaled "
                                                   "to this run", methods=SUPCON, only_if="pruned")
    end_step_head: int | None = help_field(None, "SupCon classifier GMP end step", methods=SUPCON, only_if="pruned")
    frequency_head: int | None = help_field(None, "SupCon classifier GMP frequency", methods=SUPCON,
                                            only_if="pruned")

    def recipe(self, sparsity: float) -> dict:
        """What shapes a model of this method trained to `sparsity` (the GMP window only when it prunes)."""
        return shaping(self, pruned=sparsity > 0)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RunConfig(JobConfig):
    """A training job: which seeds and sparsities."""

    index_start: int = help_field(0, "first model index (seed = index)")
    index_end: int = help_field(29, "last model index, inclusive")
    pruning_percentages: tuple = help_field((0.0, 0.3, 0.5, 0.7, 0.9),
                                            "final sparsities; 0.0 = dense (comma or space separated)",
                                            nargs="*", item=float)


# ---- presets ---------------------------------------------------------------------------------------

_SUPCON_PAPER = dict(epochs=500, batch_size=1024, learning_rate=0.05, weight_decay=4e-4, lr_milestones=(),
                     gmp_schedule="late")
_DEMO = dict(dataset="digits", arch="wrn10_1", vertical_flip=False)  # a flipped 6 is a 9
# Demo recipes: digits at 8x8 train in CPU seconds; measured dense test accuracy ~98% (supervised), ~81% (SupCon)
_DEMO_SUPERVISED = dict(epochs=12, batch_size=64, learning_rate=0.1, weight_decay=5e-4, lr_milestones=(8, 11))
_DEMO_SUPCON = dict(epochs=15, batch_size=128, learning_rate=0.1, weight_decay=4e-4, lr_milestones=(),
                    head_epochs=5, batch_size_head=64, head_milestones=(3, 4), gmp_schedule="late")

# Study recipes: Fashion-MNIST (real 28x28 images, the full 10,000-image test set) so that `reproduce.py --preset
# study` runs the whole study on 2 CPU cores within an hour with 5 models per population. Chosen by measurement on
# such a machine (2 dense models per recipe, mean test accuracy, wall seconds of the 2-model job; README, "The
# study preset's figures"). Supervised, 5,000-image subset: 3 epochs at batch 128 .680 (41 s), at batch 64 .736
# (39 s), at batch 32 .754 (49 s); 5 epochs at batch 64 .782 (58 s); 3 epochs on 10,000 images at batch 128 .772
# (65 s). SupCon (encoder epochs + linear head epochs): 2 + 2 at batch 128 .511 (49 s), at batch 64 .608 (52 s);
# 2 + 4 at batch 64 .646 (57 s), at batch 32 .669 (60 s); 2 + 8 at batch 64 .667 (69 s); 3 + 4 at batch 64 .663
# (76 s); 4 + 2 at batch 64 .657 (84 s). Short schedules gain more from steps than from images, hence the small
# batches. Twice the training (10 supervised epochs; 4 + 8 SupCon epochs) gives .829 (97 s) and .716 (110 s). The
# whole study took 44 min.
_STUDY = dict(dataset="fashion_mnist", arch="wrn10_1", train_subset=5000)
_STUDY_SUPERVISED = dict(epochs=5, batch_size=64, learning_rate=0.05, weight_decay=5e-4, lr_milestones=(4,))
_STUDY_SUPCON = dict(epochs=2, batch_size=32, learning_rate=0.025, weight_decay=4e-4, lr_milestones=(),
                     head_epochs=4, batch_size_head=64, head_milestones=(), gmp_schedule="late")

PRESETS = {
    ("paper", "supervised"): {},
    ("paper", "supcon"): _SUPCON_PAPER,
    ("demo", "supervised"): {**_DEMO, **_DEMO_SUPERVISED},
    ("demo", "supcon"): {**_DEMO, **_DEMO_SUPCON},
    ("study", "supervised"): {**_STUDY, **_STUDY_SUPERVISED},
    ("study", "supcon"): {**_STUDY, **_STUDY_SUPCON},
}


PRESET_NAMES = ("paper", "demo", "study")
# The populations a preset trains (`sup_training.py --preset demo` trains the demo's): the dense and early-GMP
# models of `reproduce.py --preset P` (common.studies.corti2022.reproduce.PRESETS: the same seeds and sparsities).
RUN_PRESETS = {
    "paper": {},
    "demo": dict(index_end=2, pruning_percentages=(0.0, 0.5, 0.9)),
    "study": dict(index_end=4, pruning_percentages=(0.0, 0.5, 0.9), eval_every=1000),
}


def preset_config(method: str, preset: str = "paper", **overrides) -> TrainConfig:
    """The preset's config with `overrides`; a vertical flip left open becomes the dataset's default."""
    return with_dataset_defaults(replace(TrainConfig(method=method), **{**PRESETS[(preset, method)], **overrides}))


def preset_run(preset: str = "paper", **overrides) -> RunConfig:
    """The run a preset makes (its seeds and sparsities), with `overrides`."""
    return replace(RunConfig(), **{**RUN_PRESETS[preset], "preset": preset, **overrides})


# ---- GMP schedules ---------------------------------------------------------------------------------

# (begin, end, frequency) in optimizer steps for the paper's run lengths, which are the reference totals.
# Supervised: 205 epochs x 391 steps = 80155. SupCon encoder: 500 x 49 = 24500. SupCon head: 100 x 196 = 19600.
GMP_REFERENCE = {
    ("supervised", "early"): ((1000, 20000, 500), 80155),  # [code] sup_training.py defaults
    ("supervised", "late"): ((20000, 39000, 500), 80155),  # [ours] early window shifted to start where it ends
    ("supcon", "early"): ((120, 2440, 62), 24500),  # [ours] later window shifted to end where it starts
    ("supcon", "late"): ((2440, 4760, 62), 24500),  # [code] clr_training.py defaults
    ("supcon", "head"): ((500, 10000, 250), 19600),  # [code] classifier GMP
}


def resolve_gmp(method: str, schedule: str, total_steps: int, overrides=(None, None, None)) -> GMPWindow:
    """A named schedule scaled to this run's length, or the explicit (begin, end, frequency) given."""
    (begin, end, freq), reference = GMP_REFERENCE[(method, schedule)]
    scale = total_steps / reference
    begin = round(begin * scale)
    # a window never collapses: in a run a few steps long (reproduce.py --smoke) it keeps one step
    scaled = (begin, max(round(end * scale), begin + 1), max(1, round(freq * scale)))
    begin, end, freq = (given if given is not None else default for given, default in zip(overrides, scaled))
    return GMPWindow(begin, end, freq)


def pruning_name(config: TrainConfig, sparsity: float) -> str:
    """How a trained model's pruning is named on disk."""
    if sparsity == 0.0:
        return "dense"
    custom = any(v is not None for v in (config.begin_step, config.end_step, config.frequency))
    return "gmp_custom" if custom else f"gmp_{config.gmp_schedule}"


# ---- checked up front, before any data is read or anything written -------------------------------------

TRAIN_RULES = dict(epochs=AT_LEAST_ONE, batch_size=AT_LEAST_ONE, learning_rate=POSITIVE, momentum=MOMENTUM,
                   weight_decay=NON_NEGATIVE, lr_milestones=MILESTONES, lr_gamma=POSITIVE, temperature=POSITIVE,
                   base_temperature=POSITIVE, projection_dim=AT_LEAST_ONE, head_epochs=AT_LEAST_ONE,
                   batch_size_head=AT_LEAST_ONE, learning_rate_head=POSITIVE, head_milestones=MILESTONES,
                   head_gamma=POSITIVE, head_eta_min=NON_NEGATIVE, train_subset=NON_NEGATIVE)
RUN_RULES = dict(JOB_RULES, pruning_percentages=DISTINCT)
