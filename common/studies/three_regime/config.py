"""Typed configuration of the three-regime study: the recipe (`RegimeConfig`) and the run (`RegimeRun`).

Paper preset = the authors' scripts as they actually run (../shared/docs/seed_systems.md, System 1(b)): PreResNet-20
on CIFAR-10; dense SGD lr 0.1, momentum 0.9, wd 1e-4, batch 64, 160 epochs, x0.1 at 80 and 120, a checkpoint every
10 epochs (the epochs knob); the batch-size knob trains B in 16 … 512 for a fixed 62,400 iterations, lr not scaled,
milestones at 50 % and 75 % of the iterations, last incomplete batches dropped; SAM's rho 0.05 … (dense training
only); one-shot magnitude pruning of the conv weights, layer-uniform, at densities 5 … 80 %; each pruned network
re-trained from its pruned weights with SGD 0.1, 160 epochs, x0.1 at 80 and 120, batch 64, retrain seeds 1, 2, 3.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace

from common.errors import UsageError
from common.config import (AT_LEAST_ONE, JOB_RULES, MILESTONES, MOMENTUM, NON_NEGATIVE, POSITIVE, JobConfig,
                           help_field, with_dataset_defaults)
from common.data import DATASETS as DATASET_REGISTRY
from common.models import ENCODERS
from common.recipe import shaping
from common.studies.three_regime.knobs import KNOBS

STUDY = "three_regime"
OBJECTIVES = ("supervised", "supcon")
SCOPES = ("layer_uniform", "global")
STAGES = ("train", "prune", "retrain", "connectivity", "cka", "plot")
SUPCON = ("supcon",)
TAG = re.compile(r"[0-9.]+")


@dataclass(frozen=True)
class RegimeConfig:
    """What shapes a model of the three-regime study. Defaults: the authors' scripts (module docstring)."""

    objective: str = help_field("supervised", "supervised (cross-entropy) or supcon (the encoder trained and "
                                              "re-trained with SupCon; errors by a k-NN on its representation)",
                                choices=OBJECTIVES)
    dataset: str = help_field("cifar10", f"dataset: one of {tuple(DATASET_REGISTRY)}", choices=tuple(DATASET_REGISTRY))
    arch: str = help_field("preresnet20", f"encoder: one of {tuple(ENCODERS)}", choices=tuple(ENCODERS))
    knob: str = help_field("epochs", "the temperature: epochs (checkpoints of one dense run), batch_size (a fixed "
                                     "iteration budget) or sam_rho", choices=tuple(KNOBS), shapes=False)
    epochs: int = help_field(160, "dense training epochs (knob epochs: the run whose checkpoints are pruned)")
    save_every: int = help_field(10, "knob epochs: prune the checkpoint of every N-th epoch", shapes=False)
    batch_size: int = help_field(64, "dense training batch size (knob batch_size: see --batch_sizes)")
    batch_sizes: tuple = help_field((16, 32, 64, 128, 256, 512), "knob batch_size: the temperatures", nargs="*",
                                    item=int, shapes=False)
    iterations: int = help_field(62400, "knob batch_size: optimizer steps of every dense run (160 epochs x 390)")
    sam_rhos: tuple = help_field((0.0, 0.05, 0.1, 0.2, 0.4, 0.6), "knob sam_rho: the temperatures (0 = plain SGD "
                                                                "with SAM's two passes)", nargs="*", item=float,
                                   shapes=False)
    sam_adaptive: bool = help_field(False, "knob sam_rho: ASAM's scale-invariant neighbourhood")
    learning_rate: float = help_field(0.1, "dense training learning rate (not scaled with the batch size)")
    momentum: float = help_field(0.9, "SGD momentum (dense and re-training)")
    weight_decay: float = help_field(1e-4, "weight decay (dense and re-training)")
    lr_milestones: tuple = help_field((80, 120), "dense epochs at which the rate is multiplied by 0.1 (knob "
                                                 "batch_size: 50 % and 75 % of the run instead)", nargs="*", item=int)
    train_subset: int = help_field(0, "train on a seeded, class-balanced subset of this many images; 0 = all")
    image_size: int = help_field(0, "average every image (train and test) down to this side by area, once at load "
                                    "(the CPU's recipe: 28x28 Fashion-MNIST to 14x14 is 4x fewer pixels); 0 = the "
                                    "dataset's own size", omit_default=True)
    vertical_flip: bool | None = help_field(None, "RandomVerticalFlip(0.5) in the supervised augmentation; none = "
                                                  "the dataset's (their CIFAR pipeline has none: --no-vertical_flip)")
    densities: tuple = help_field((0.05, 0.06, 0.07, 0.08, 0.1, 0.14, 0.2, 0.4, 0.8),
                                  "the loads: fractions of the conv weights kept by one-shot magnitude pruning",
                                  nargs="*", item=float, shapes=False)
    scope: str = help_field("layer_uniform", "layer_uniform (every conv layer keeps the density; theirs) or global",
                            choices=SCOPES, only_if="pruned")
    retrain_epochs: int = help_field(160, "re-training epochs of every pruned network", only_if="retrained")
    retrain_learning_rate: float = help_field(0.1, "re-training learning rate", only_if="retrained")
    retrain_batch_size: int | None = help_field(None, "re-training batch size; none = theirs for the knob: 64 (the "
                                                      "epochs and SAM trees), 128 (the batch-size tree)",
                                                only_if="retrained")
    retrain_milestones: tuple = help_field((80, 120), "re-training epochs at which the rate is multiplied by 0.1",
                                           nargs="*", item=int, only_if="retrained")
    temperature: float = help_field(0.5, "SupCon loss temperature (not the study's 'temperature')", methods=SUPCON)
    base_temperature: float = help_field(0.07, "SupCon base temperature", methods=SUPCON)
    projection_dim: int = help_field(128, "SupCon projection head output size", methods=SUPCON)

    @property
    def method(self) -> str:
        return self.objective

    def recipe(self, stage: str = "retrained") -> dict:
        """What shapes a dense, a pruned or a re-trained network (the grid's lists of temperatures and loads
        shape none: a cell's own values are in its name), so a grid can grow without retraining the rest."""
        return shaping(self, pruned=stage != "dense", retrained=stage == "retrained")

    def to_dict(self) -> dict:
        return asdict(self)

    def temperatures(self) -> tuple:
        """The knob's values, in order: checkpoint epochs, batch sizes or rhos."""
        return KNOBS[self.knob].values(self)


@dataclass(frozen=True)
class RegimeRun(JobConfig):
    """Which seeds and stages; the analysis settings; how and where it runs."""

    index_start: int = help_field(1, "first seed of the dense runs (their writer: 1; their notebook: 1 to 3)")
    index_end: int = help_field(1, "last seed of the dense runs, inclusive")
    retrain_seeds: tuple = help_field((1, 2, 3), "seeds of the re-trainings of every pruned network (pairs of them "
                                                 "are compared)", nargs="*", item=int)
    stages: tuple = help_field(STAGES, f"stages to run, in order: {', '.join(STAGES)}", nargs="*", item=str)
    only_temperatures: tuple = help_field((), "work on these temperatures of the grid only (one launcher task per "
                                              "temperature point); empty = all", nargs="*", item=float)
    lmc_points: int = help_field(11, "points on the segment between two re-trained networks, endpoints included")
    path_test_error: bool = help_field(True, "supervised: the test error at every point of the segment too (theirs; "
                                             "the barrier reads the train error); --no-path_test_error measures "
                                             "the train curve only")
    cka_images: int = help_field(6464, "images CKA compares on (theirs: 101 batches x 64 training images)")
    cka_split: str = help_field("train", "train (theirs: images every model has seen) or test", choices=("train", "test"))
    test_error_epochs: int = help_field(5, "a re-trained network's test error is the mean over its last N epochs "
                                           "(their notebook: 5)")
    knn_k: int = help_field(200, "SupCon: neighbours of the weighted cosine k-NN that measures error along the path")
    barrier_threshold: float = help_field(-0.1, "regime I where the mean barrier (theirs: m - e(t*) of the train "
                                                "error) lies below this [ours]")

    @property
    def dense_seeds(self) -> tuple[int, ...]:
        """The dense runs' seeds: --index_start..--index_end, as every script chooses its seeds."""
        return tuple(range(self.index_start, self.index_end + 1))


PRESETS = {
    "paper": dict(vertical_flip=False),  # their CIFAR augmentation: crop and horizontal flip only
    # digits in CPU minutes: a 3 x 3 grid (checkpoints at epochs 2, 4, 6; densities 5, 20, 80 %), 2 retrain seeds
    "demo": dict(dataset="digits", arch="preresnet20", epochs=6, save_every=2, lr_milestones=(4,),
                 densities=(0.05, 0.2, 0.8), retrain_epochs=4, retrain_milestones=(3,), iterations=140,
                 batch_sizes=(16, 64, 256), sam_rhos=(0.0, 0.1, 0.4)),
}
# Fashion-MNIST on CPU cores, chosen by measurement (candidates below; docs/three_regime.md). Every candidate:
# supervised, vgg4_16 (conv 16-16 / 32-32, 17k conv weights) on 14x14 images (area-averaged from 28x28), 2,000
# class-balanced training images (the full 10,000-image test set), 40 dense epochs at lr 0.1, x0.1 at 20 and 30
# (temperatures = the checkpoints at epochs 10 and 20 before the drop, 30 and 40 after), one-shot layer-uniform
# pruning, each pruned network re-trained 40 epochs with the same schedule (20 at the high rate), batch 64, 11
# points per path, the barrier on the train error (--no-path_test_error). Barriers: the rule's m - e(t*) (< 0 is
# a barrier), cell mean over its pairs [95 % interval, jackknife over dense and retrain seeds]; regime I needs
# the interval's upper end below -0.1. Times: one pinned core of the shared machine (AMD EPYC), fp32 unless said.
# | cand. | images | dense x retrain seeds | temperatures | 1 % | 2 % | 5 % | 20 % | time | regimes |
# | A  | 2,000 | 1 x 3 | 20, 40 | -0.196, -0.041 | -0.039, -0.144 | -0.007, +0.003 | 0.000, +0.003 | 24 re-trainings
#        590 s, connectivity 67 s, CKA 5 s | no interval (1 dense seed); regime-I-sized barriers at 1-2 %, 0.03 to
#        0.29 pair to pair |
# | B  | 1,000 | 2 x 3 | 10, 40 | -0.021, -0.057 | -0.037, -0.027 | -0.008, -0.001 | -0.007, +0.001 | 48
#        re-trainings 555 s, connectivity 101 s | no interval (2 dense seeds); no barrier below -0.06: fewer images,
#        shallower barriers: dropped |
# | S1 | 2,000 | 3 x 3 (9 pairs) | 20, 30, 40 (10: dense seed 1 only, -0.049 / -0.005 / -0.008 / -0.006) |
#        t20 -0.145 [-0.524, +0.234], t30 -0.123 [-0.602, +0.356], t40 -0.173 [-0.765, +0.419] |
#        t20 -0.029 [-0.092, +0.034], t30 -0.014 [-0.078, +0.049], t40 -0.082 [-0.403, +0.240] |
#        -0.008 [-0.018, +0.002], -0.006 [-0.019, +0.006], +0.000 [-0.020, +0.020] |
#        -0.001 [-0.006, +0.004], -0.001 [-0.012, +0.010], -0.001 [-0.012, +0.009] |
#        per temperature, 2 of its 3 dense seeds: 24 re-trainings 458-489 s, connectivity 72-102 s, CKA 5-9 s |
#        II-A in every cell: regime I excluded at 5 and 20 % (intervals above -0.1), neither shown nor excluded at 1 %
#        and at 2 % after 40 epochs ('II-A?'); no II-B (CKA does not rise down any column) |
# S1 is the preset: the only candidate with intervals. It cannot decide regime I at 1 %: the retrain seeds carry
# the spread (pairs of one retrain seed in another basin: 0.00 to -0.51 within a cell; 2 of the 27 re-trainings at
# 1 % ended at chance, their pairs left out), se 0.09-0.14 on 2 df. At the observed means, the interval's upper
# end would pass -0.1 with about 45 seeds of each kind (t20: 47, t40: 44, t30: 279; se shrinking as sqrt(3 / K)):
# 2,000+ re-trainings per cell instead of 9; more images deepen barriers (B against A) but were not tried beyond 2,000.
# S1 again with bf16 autocast + channels_last (the CPU defaults since the speed merge), the preset's own command
# with --only_temperatures 20 from an empty root, one core: 887 s = dense (3 seeds, 40 epochs) 56 s + 36
# re-trainings 711 s + connectivity (36 pairs) 98 s + CKA 11 s + plot 2 s; bf16 gains nothing on this net (fp32:
# 687-734 s for 36 re-trainings). Cells: 1 % -0.128 [-0.528, +0.271], 2 % -0.022 [-0.050, +0.005], 5 % +0.000
# [-0.015, +0.016], 20 % -0.001 [-0.007, +0.006]: the same regimes as fp32 (II-A? at 1 %, II-A elsewhere).
# Time of the preset, estimated from those measured parts, one core: supervised 56 s + 4 x (711 + 98 + 11 s) = 56
# min; SupCon's dense run (measured, 45.5 s a model against supervised 18.7 s: 2.4x) puts its grid at about 2.3 h
# (its k-NN connectivity unmeasured). On 2 cores (2 threads, one task at a time) divide by 1.0-1.24 (the speed
# bench's thread gain for supervised bf16; unmeasured for this net): supervised 45-56 min, both objectives 2.6-3.2 h.
# `iterations` (the batch-size knob's budget) stays the demo's 140 so that the measured epochs-knob models keep
# their recipe; the batch-size knob at this scale is unmeasured: pass --iterations 1280 (40 epochs at batch 64).
PRESETS["study"] = dict(PRESETS["demo"], dataset="fashion_mnist", arch="vgg4_16", train_subset=2000, image_size=14,
                        epochs=40, save_every=10, lr_milestones=(20, 30), densities=(0.01, 0.02, 0.05, 0.2),
                        retrain_epochs=40, retrain_milestones=(20, 30))
RUN_PRESETS = {"paper": dict(index_start=1, index_end=3),  # their notebook averages dense seeds 1-3
               # test error at the last epoch only (evaluated then), CKA on all 2,000 training images
               "study": dict(index_start=1, index_end=3, retrain_seeds=(1, 2, 3), cka_images=2000, curves=False,
                             test_error_epochs=1, eval_every=40, path_test_error=False),
               "demo": dict(retrain_seeds=(1, 2), cka_images=1024, curves=False, test_error_epochs=1)}

# reproduce.py --study three_regime: the objectives each preset runs (--objectives). The study preset runs the
# supervised grid only: measured 51.0 min on one core from a fresh clone (2026-12-03; every cell II-A, regime I
# excluded in 10 of 16 cells, undecided at 1 % and at 2 % after 10 and 40 epochs), where SupCon's grid adds about 2 h (its dense run measured
# 2.4x the supervised one, its k-NN connectivity over 10,000 test images unmeasured); --objectives supervised,supcon
# asks for both.
PRESET_OBJECTIVES = {"paper": OBJECTIVES, "demo": OBJECTIVES, "study": ("supervised",)}

RULES = dict(epochs=AT_LEAST_ONE, save_every=AT_LEAST_ONE, batch_size=AT_LEAST_ONE, iterations=AT_LEAST_ONE,
             learning_rate=POSITIVE, momentum=MOMENTUM, weight_decay=NON_NEGATIVE, lr_milestones=MILESTONES,
             train_subset=NON_NEGATIVE, image_size=NON_NEGATIVE, retrain_epochs=AT_LEAST_ONE, retrain_learning_rate=POSITIVE,
             retrain_batch_size=AT_LEAST_ONE, retrain_milestones=MILESTONES, temperature=POSITIVE,
             base_temperature=POSITIVE, projection_dim=AT_LEAST_ONE,
             densities=(lambda v: bool(v) and all(0 < d <= 1 for d in v) and len(set(v)) == len(v),
                        "each in (0, 1], each once"),
             batch_sizes=(lambda v: bool(v) and all(b >= 1 for b in v) and len(set(v)) == len(v), "each >= 1, each once"),
             sam_rhos=(lambda v: bool(v) and all(r >= 0 for r in v) and len(set(v)) == len(v), "each >= 0, each once"))
RUN_RULES = dict(JOB_RULES, lmc_points=(lambda v: v >= 3, "must be >= 3"), cka_images=AT_LEAST_ONE,
                 test_error_epochs=AT_LEAST_ONE,
                 knn_k=AT_LEAST_ONE,
                 retrain_seeds=(lambda v: len(set(v)) == len(v) >= 2, "needs at least two distinct seeds to compare"),
                 index_start=NON_NEGATIVE,
                 stages=(lambda v: bool(v) and all(s in STAGES for s in v), f"choose among {', '.join(STAGES)} (or all)"))



def preset_config(preset: str, **overrides) -> RegimeConfig:
    if preset not in PRESETS:
        raise UsageError(f"--preset {preset}: the three-regime study has the presets {', '.join(PRESETS)}")
    cfg = with_dataset_defaults(replace(RegimeConfig(), **{**PRESETS[preset], **overrides}))
    if cfg.retrain_batch_size is None:
        cfg = replace(cfg, retrain_batch_size=KNOBS[cfg.knob].retrain_batch)
    return cfg
