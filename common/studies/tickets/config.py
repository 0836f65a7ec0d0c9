"""Typed configuration of the tickets study: the recipe (`TicketsConfig`: what shapes a model) and the run
(`TicketsRun`: which seeds, how many levels, which stages, where).

Caron et al.'s CIFAR-10 hyperparameters are lost in the text we have (their appendix's numbers did not survive
extraction), so the paper preset is open_lth's CIFAR recipe (../shared/docs/seed_systems.md, System 2(b)): SGD lr
0.1, momentum 0.9, weight decay 1e-4, batch 128, 160 epochs, x0.1 at epochs 80 and 120, 20 % of the remaining
weights pruned per level. The rewind point is 1 epoch: our choice. The supplement says "we set the late resetting
parameter to [N] epoch[s] on CIFAR-10" with the number lost; 1 epoch (0.6 % of 160 epochs) sits in the range
Frankle et al. 2020 found stable for CIFAR ResNets (a few hundred to a few thousand iterations). The paper's
appendix names Adam for CIFAR-10: `--optimizer adam`. One recipe trains both the pruning objective's IMP levels and
every ticket's re-training on labels (the paper: "CIFAR-10 Labels & RotNet: we train for … epochs"), so every mask
source is re-trained alike.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace

from common.errors import UsageError
from common.config import (AT_LEAST_ONE, JOB_RULES, MILESTONES, MOMENTUM, NON_NEGATIVE, POSITIVE, JobConfig,
                           help_field, with_dataset_defaults)
from common.data import DATASETS as DATASET_REGISTRY
from common.data.subsets import SAMPLINGS
from common.engine.objectives import METHODS
from common.engine.optimizers import OPTIMIZERS
from common.models import ENCODERS
from common.recipe import shaping

STUDY = "tickets"
# what IMP can prune with: every objective a network is trained with (common.engine.objectives: labels, SupCon,
# Caron et al.'s self-supervised pretexts RotNet, Exemplar, NPID, SimCLR's NT-Xent, S4L and few labels), each
# trained by its phase of common.studies.tickets.objectives.PHASES
OBJECTIVES = tuple(METHODS)
SUPCON = ("supcon",)
CONTRASTIVE = tuple(name for name, o in METHODS.items() if o.contrastive)  # a temperature over two views
EMBEDDING = tuple(name for name, o in METHODS.items() if o.embedding)  # a projection head
LABEL_FRACTION = tuple(name for name, o in METHODS.items() if o.labels == "fraction")
STAGES = ("imp", "retrain", "transfer", "report")
REWIND = re.compile(r"(\d+)(it|ep)")


@dataclass(frozen=True)
class TicketsConfig:
    """What shapes a model of the tickets study. Defaults: open_lth's CIFAR recipe (module docstring)."""

    objective: str = help_field("supervised", "what IMP trains on to find the masks: supervised (labels), supcon, the "
                                              "self-supervised rotnet, exemplar, simclr, npid, or s4l (rotations + a "
                                              "labelled fraction), few_labels (that fraction alone)",
                                choices=OBJECTIVES)
    dataset: str = help_field("cifar10", f"dataset: one of {tuple(DATASET_REGISTRY)}", choices=tuple(DATASET_REGISTRY))
    arch: str = help_field("resnet18", f"encoder: one of {tuple(ENCODERS)} (the paper: resnet18, vgg19)",
                           choices=tuple(ENCODERS))
    optimizer: str = help_field("sgd", "sgd; adam (which the paper's appendix names for CIFAR-10); or sam (Foret et "
                                       "al.'s sharpness-aware SGD, rho 0.05; not with npid)",
                                choices=tuple(OPTIMIZERS))
    epochs: int = help_field(160, "epochs of every training: each IMP level and each ticket's re-training")
    batch_size: int = help_field(128, "training batch size (SupCon: images per batch, two views each)")
    learning_rate: float = help_field(0.1, "initial learning rate")
    momentum: float = help_field(0.9, "SGD momentum")
    weight_decay: float = help_field(1e-4, "weight decay (L2)")
    lr_milestones: tuple = help_field((80, 120), "epochs at which the learning rate is multiplied by lr_gamma",
                                      nargs="*", item=int)
    lr_gamma: float = help_field(0.1, "learning-rate decay factor at each milestone")
    vertical_flip: bool | None = help_field(None, "RandomVerticalFlip(0.5) in the supervised augmentation; none = "
                                                  "the dataset's")
    train_subset: int = help_field(0, "train on a seeded, class-balanced subset of this many training examples; "
                                      "0 = all")
    image_size: int = help_field(0, "average every image of the dataset (train and test) down to this side by area, "
                                    "once at load (28x28 Fashion-MNIST to 14x14: 4x fewer pixels); 0 = the "
                                    "dataset's own size; the probe dataset keeps its own", omit_default=True)
    pruning_rate: float = help_field(0.2, "fraction of the remaining weights each IMP level prunes (global "
                                          "magnitude over every conv weight; never the head, BatchNorm or biases); "
                                          "0.36 = 1 - 0.8^2 reaches the paper's densities at every second level",
                                     only_if="pruned")
    rewind: str = help_field("1ep", "the rewind point: <N>it (optimizer steps) or <N>ep (epochs), e.g. 0it, 500it, "
                                    "1ep, 2ep; surviving weights restart from there, with the schedule and the data "
                                    "position (1ep: our choice, the paper's CIFAR-10 value is lost)",
                             only_if="rewound")
    natural_zero_eps: float = help_field(1e-4, "the corrected random mask first prunes the weights of the trained "
                                               "dense network with |w| below this", only_if="natural")
    prune_first_n_layers: int = help_field(0, "layerwise tickets (Caron et al. Fig. 4): prune only the first N conv "
                                              "layers of the encoder (in forward order; a block's shortcut after its "
                                              "convs) and keep the rest dense; 0 = every conv layer",
                                           only_if="pruned", omit_default=True)
    prune_last_n_layers: int = help_field(0, "layerwise tickets: prune only the last N conv layers of the encoder "
                                             "(in forward order) and keep the rest dense; 0 = every conv layer. A "
                                             "layerwise level prunes as many weights as the other side of its split "
                                             "would (imp.level_sparsity)", only_if="pruned", omit_default=True)
    temperature: float = help_field(0.5, "SupCon and SimCLR (NT-Xent) temperature", methods=CONTRASTIVE)
    base_temperature: float = help_field(0.07, "SupCon base temperature (the loss is scaled by T/base_T)",
                                         methods=SUPCON)
    projection_dim: int = help_field(128, "size of the embedding head (SupCon, SimCLR: an MLP; NPID, Exemplar: a "
                                          "linear layer)", methods=EMBEDDING)
    triplet_margin: float = help_field(1.0, "Exemplar: the triplet loss's margin on L2-normalised embeddings",
                                       methods=("exemplar",))
    exemplar_degrees: float = help_field(20.0, "Exemplar: small random rotations, uniform in ±degrees, on top of the "
                                               "contrastive augmentation (Caron et al.'s appendix)",
                                         methods=("exemplar",))
    npid_temperature: float = help_field(0.07, "NPID: temperature of the non-parametric softmax (Wu et al.)",
                                         methods=("npid",))
    npid_negatives: int = help_field(4096, "NPID: noise samples of the NCE loss per step (Wu et al.: 4,096)",
                                     methods=("npid",))
    npid_momentum: float = help_field(0.5, "NPID: momentum of the memory bank update (Wu et al.: 0.5)",
                                      methods=("npid",))
    label_fraction: float = help_field(0.1, "S4L and few_labels: fraction of the training labels used for pruning",
                                       methods=LABEL_FRACTION)
    label_sampling: str = help_field("per_class", "S4L and few_labels: per_class (that fraction of every class) or "
                                                  "classes (that fraction of the classes, all their images)",
                                     choices=SAMPLINGS, methods=LABEL_FRACTION)
    transfer_subset: int = help_field(0, "transfer (Figs. 1-2): train the probes and the finetunings on the other "
                                         "dataset (--probe_dataset) with a seeded, class-balanced subset of this many "
                                         "of its training images; 0 = all", only_if="transfer")

    @property
    def layerwise(self) -> bool:
        """A layerwise ticket (Figure 4): only some conv layers pruned."""
        return bool(self.prune_first_n_layers or self.prune_last_n_layers)

    @property
    def method(self) -> str:
        """What `common.recipe.shaping` reads: SupCon-only fields shape only SupCon-pruned models."""
        return self.objective

    def recipe(self, pruned: bool = True, natural: bool = False, transfer: bool = False, rewound: bool = True) -> dict:
        """What shapes a model: the pruning rate only a pruned one (a level > 0 or its tickets), the natural-zero
        threshold only the corrected random mask's tickets, the transfer subset only a finetuning on the other
        dataset, the rewind point every model but the random control shared by every objective."""
        return shaping(self, pruned=pruned, natural=natural, transfer=transfer, rewound=rewound)

    def to_dict(self) -> dict:
        return asdict(self)

    def rewind_step(self, steps_per_epoch: int) -> int:
        """The rewind point in optimizer steps of the run."""
        count, unit = REWIND.fullmatch(self.rewind).groups()
        return int(count) * (steps_per_epoch if unit == "ep" else 1)


@dataclass(frozen=True)
class TicketsRun(JobConfig):
    """Which seeds, how many IMP levels and which stages; how and where they run."""

    index_start: int = help_field(0, "first seed")
    index_end: int = help_field(2, "last seed, inclusive (Caron et al. average several seeds; 3 here)")
    levels: int = help_field(20, "IMP levels after the dense one: density 0.8^L of the pool at level L (20: 1.15 %)")
    stages: tuple = help_field(STAGES, "stages to run, in order: imp (the pruning objective's IMP levels), retrain "
                                       "(every level's ticket and controls re-trained on labels), transfer (linear "
                                       "probes of every level's features; finetuning on the probe dataset), report",
                               nargs="*", item=str)
    probe_dataset: str = help_field("", "the other dataset the pruned features are probed and finetuned on "
                                        "(default: fashion_mnist for digits and cifar10, digits for fashion_mnist)")
    probe_test_subset: int = help_field(0, "linear probes: score on the first N test images of each probe dataset; "
                                           "0 = all")
    probe_steps: int = help_field(300, "linear probes: full-batch Adam steps of each logistic regression")
    finetune_objectives: tuple = help_field(("rotnet", "exemplar"), "objectives whose pruned networks are also "
                                            "finetuned on the probe dataset, against pruning during that finetuning "
                                            "(Fig. 2: Caron et al. show RotNet and Exemplar)", nargs="*", item=str)
    transfer_levels: tuple = help_field((), "IMP levels probed (Fig. 1) and finetuned on the probe dataset (Fig. 2); "
                                            "none = every level; level 0 always", nargs="*", item=int)
    retrain_levels: tuple = help_field((), "IMP levels whose tickets and controls are re-trained on labels (retrain "
                                           "stage); none = every level; level 0 (the dense reference) always",
                                       nargs="*", item=int)
    natural_control: bool = help_field(True, "also re-train the random mask corrected for natural sparsity (Caron "
                                             "et al. §4.3) at every re-trained level")


PRESETS = {
    "paper": {},
    # digits in CPU minutes: WRN-10-1 (76,720 conv weights) reaches ~96 % dense. 0.36 per level (= 1 - 0.8^2: the
    # paper's densities at every second level) reaches 6.9 % in 6 levels. Rewind 5 steps = 3.6 % of the 138 steps of
    # training (1 epoch, the old default, was 17 %: the label tickets started with a trained head). Transfer: probes
    # on 1,000 Fashion-MNIST training images (and the digits' 1,437). NPID at Wu et al.'s T = 0.07 collapses on the
    # 8x8 digits (the embeddings' mean pairwise cosine reaches 1 within 50 steps, docs/fidelity.md); at 0.5
    # it learns. Measured on one core (8 seeds; fp32 before the bf16/channels_last defaults): supervised IMP 104 s,
    # retrain 116 s (it also trains the shared controls), probes 61 s; RotNet 369 + 69 + 60 s; Exemplar 205 + 70 +
    # 52 s; report 2 s: 1,129 s = 18.8 min. With bf16 + channels_last (the engine's CPU defaults since issue 32) the
    # supervised part took 107 + 107 + 50 s (-6 %): ~17.7 min on one core, ~12.5-14 min on two (1-to-2-core ratio
    # 1.25-1.4 measured on the IMP stages). Measured 2026-12-03 from a fresh clone on 2 cores: 10.5 min (F&C +5.3 pp
    # [+3.4, +7.2] at 6.9 %). Candidates: docs/tickets.md.
    "demo": dict(dataset="digits", arch="wrn10_1", epochs=6, batch_size=64, lr_milestones=(4,), vertical_flip=False,
                 transfer_subset=1000, npid_temperature=0.5, pruning_rate=0.36, rewind="5it"),
    # Fashion-MNIST (real images) in a CPU hour, chosen from these single-core candidates (supervised IMP + retrain,
    # 4 seeds, 10 levels at 0.36 to 1.8 %, tickets re-trained at levels 0/3/6/9, fp32, evaluation at the end only):
    #   28x28, 2,000 images: 57 s per dense model: one objective's IMP alone ~15 min; does not fit
    #   8x8, 2,000 images (this preset): 99 + 111 s; dense 71.1-71.9 %; at 1.8 %: rewind 71.1, reinit 67.5, random
    #     64.7 %; Frankle & Carbin +3.6 pp [+1.2, +6.1] TRUE (+2.9 [+0.6, +5.1] against the level-0 gap)
    #   14x14, 2,000 images: 288 + 300 s (2.7x); dense 75.1-75.3 %; F&C +7.6 [+5.2, +10.0]; too slow for three
    #     objectives, transfer and layerwise tickets in the hour
    # The whole preset (3 objectives x 6 seeds, natural control, probes at 0/5/9, RotNet and Exemplar finetuned on
    # 1,000 digits, layerwise split for supervised and RotNet), estimated at ~57 min on one core, measured 2026-12-03
    # from a fresh clone: 49.0 min on one core (layerwise tickets 25.1 of it); F&C +5.8 pp [+3.5, +8.0] at 1.8 %.
    "study": dict(dataset="fashion_mnist", arch="wrn10_1", train_subset=2000, image_size=8, epochs=6, batch_size=64,
                  lr_milestones=(4,), transfer_subset=1000, npid_temperature=0.5, pruning_rate=0.36, rewind="5it"),
}
# the demo trains hundreds of small models: their curve PNGs would take a third of its time (--curves draws them);
# 8 seeds (paired intervals over seeds: with 4 the claims' detectable effects were 2-4 pp on 360 test digits);
# tickets re-trained at levels 0, 3 and 6 (100, 26.2, 6.9 %), probes at levels 0, 5 (10.7 %: the transfer claim's
# level) and 6, scored on the first 1,000 test images of each dataset; no finetunings, no natural-sparsity control
# (at this scale nothing is naturally near zero: the corrected mask equals the plain one), no layerwise tickets.
# Both presets evaluate on the test set once, at the end of each training (eval_every = epochs): the claims read
# the final accuracy only, and per-epoch evaluation of 10,000 Fashion-MNIST test images costs more than training
# on 2,000 (F28: ~60 % of a model's time); on the demo's 360 digits it was 5 % of IMP's time.
RUN_PRESETS = {"paper": {}, "demo": dict(index_end=7, levels=6, curves=False, eval_every=6, probe_test_subset=1000,
                                         retrain_levels=(0, 3, 6), transfer_levels=(5, 6), finetune_objectives=(),
                                         natural_control=False),
               "study": dict(index_end=5, levels=9, curves=False, eval_every=6, retrain_levels=(0, 3, 6, 9),
                             transfer_levels=(5, 9))}

# reproduce.py --study tickets: the objectives each preset prunes with (--objectives)
PRESET_OBJECTIVES = {"paper": OBJECTIVES, "study": ("supervised", "rotnet", "exemplar"),
                     "demo": ("supervised", "rotnet", "exemplar")}
# reproduce.py --study tickets: the layerwise tickets each preset runs (--layerwise_depths)
LAYERWISE_DEPTHS = {"paper": "auto", "study": "split", "demo": "none"}

RULES = dict(epochs=AT_LEAST_ONE, batch_size=AT_LEAST_ONE, learning_rate=POSITIVE, momentum=MOMENTUM,
             weight_decay=NON_NEGATIVE, lr_milestones=MILESTONES, lr_gamma=POSITIVE, train_subset=NON_NEGATIVE,
             image_size=NON_NEGATIVE,
             pruning_rate=(lambda v: 0 < v < 1, "must lie in (0, 1)"), natural_zero_eps=NON_NEGATIVE,
             rewind=(lambda v: REWIND.fullmatch(v) is not None, "must be <N>it or <N>ep, e.g. 500it or 1ep"),
             temperature=POSITIVE, base_temperature=POSITIVE, projection_dim=AT_LEAST_ONE,
             prune_first_n_layers=NON_NEGATIVE, prune_last_n_layers=NON_NEGATIVE, transfer_subset=NON_NEGATIVE,
             triplet_margin=POSITIVE, exemplar_degrees=NON_NEGATIVE,
             npid_temperature=POSITIVE, npid_negatives=AT_LEAST_ONE, npid_momentum=MOMENTUM,
             label_fraction=(lambda v: 0 < v <= 1, "must lie in (0, 1]"))
RUN_RULES = dict(JOB_RULES, index_start=NON_NEGATIVE, levels=NON_NEGATIVE, probe_test_subset=NON_NEGATIVE,
                 probe_steps=AT_LEAST_ONE, transfer_levels=(lambda v: all(x >= 0 for x in v), "must be >= 0"),
                 retrain_levels=(lambda v: all(x >= 0 for x in v), "must be >= 0"),
                 finetune_objectives=(lambda v: all(o in OBJECTIVES for o in v),
                                      f"choose among {', '.join(OBJECTIVES)}"),
                 probe_dataset=(lambda v: v == "" or v in DATASET_REGISTRY,
                                f"choose among {', '.join(DATASET_REGISTRY)}"),
                 stages=(lambda v: bool(v) and all(s in STAGES for s in v),
                         f"choose among {', '.join(STAGES)} (or all)"))


def preset_config(preset: str, **overrides) -> TicketsConfig:
    """The preset's recipe with `overrides`; a vertical flip left open becomes the dataset's default."""
    if preset not in PRESETS:
        raise UsageError(f"--preset {preset}: the tickets study has the presets {', '.join(PRESETS)}")
    return with_dataset_defaults(replace(TicketsConfig(), **{**PRESETS[preset], **overrides}))


def objective_tag(cfg: TicketsConfig) -> str:
    """The pruning objective as model names and tables carry it: its name (with '-' for '_'), and for the objectives
    that see a labelled fraction that fraction's sampling and size, e.g. 's4l-per-class-0.1'."""
    tag = cfg.objective.replace("_", "-")
    return f"{tag}-{labels_tag(cfg)}" if cfg.objective in LABEL_FRACTION else tag


def labels_tag(cfg: TicketsConfig) -> str:
    return f"{cfg.label_sampling.replace('_', '-')}-{cfg.label_fraction:g}"


def objective_of(tag: str) -> str:
    """The objective (a key of OBJECTIVES) an objective tag names."""
    return next(o for o in sorted(OBJECTIVES, key=len, reverse=True) if tag.startswith(o.replace("_", "-")))


def level_density(rate: float, level: int) -> float:
    """Fraction of the pool kept after `level` IMP levels: (1 - rate)^level."""
    return (1.0 - rate) ** level
