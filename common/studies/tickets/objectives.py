"""How the tickets study trains each objective IMP can prune with: `PHASES`, objective -> its training phase from
the recipe (the objective's facts, its network's heads among them, are common.engine.objectives'). A new objective
of the registry is pruned here with one entry (its phase: augmentation and hyperparameters). Ticket re-training on
labels is `label_phase`, the same for every objective and mask source."""
from __future__ import annotations

from typing import Callable

from common.data import DATASETS
from common.data.augment import exemplar_augment, supervised_augment
from common.engine.objectives import make_objective
from common.engine.phase import Phase
from common.phases import encoder_phase, supcon_phase as common_supcon_phase
from common.studies.tickets.config import TicketsConfig


def _schedule(cfg: TicketsConfig) -> dict:
    return dict(epochs=cfg.epochs, batch_size=cfg.batch_size, learning_rate=cfg.learning_rate,
                momentum=cfg.momentum, weight_decay=cfg.weight_decay, optimizer=cfg.optimizer,
                milestones=cfg.lr_milestones, gamma=cfg.lr_gamma)


def label_phase(cfg: TicketsConfig, names: list[str], image_size: int, **extra) -> Phase:
    """Cross-entropy on labels over the whole network: the supervised objective's IMP training and every ticket's
    re-training."""
    return Phase("train", make_objective("supervised"), trainable=tuple(names), augment=supervised_augment(cfg, image_size),
                 **_schedule(cfg), **extra)


def supcon_phase(cfg: TicketsConfig, names: list[str], image_size: int, **extra) -> Phase:
    """The SupCon loss on the encoder and projection head (the classifier is not trained, and IMP never prunes
    either head)."""
    return common_supcon_phase("encoder", cfg.temperature, cfg.base_temperature, names, cfg.dataset,
                               **_schedule(cfg), **extra)


def simclr_phase(cfg: TicketsConfig, names: list[str], image_size: int, **extra) -> Phase:
    """SimCLR's NT-Xent (SupCon without labels, T/base_T = 1) on the encoder and projection head."""
    return _pretext_phase(cfg, names, make_objective("simclr", temperature=cfg.temperature),
                          DATASETS[cfg.dataset].contrastive, **extra)


def rotnet_phase(cfg: TicketsConfig, names: list[str], image_size: int, **extra) -> Phase:
    """Gidaris et al.'s RotNet: the four rotations of every image in one batch, the 4-way rotation head."""
    return _pretext_phase(cfg, names, make_objective("rotnet"), supervised_augment(cfg, image_size), **extra)


def exemplar_phase(cfg: TicketsConfig, names: list[str], image_size: int, **extra) -> Phase:
    """Exemplar in Doersch & Zisserman's triplet form, as Caron et al.: two views (the contrastive augmentation with
    colour jitter, plus small random rotations) of an image are anchor and positive, another image the negative."""
    augment = exemplar_augment(DATASETS[cfg.dataset].contrastive, cfg.exemplar_degrees)
    return _pretext_phase(cfg, names, make_objective("exemplar", margin=cfg.triplet_margin), augment, **extra)


def npid_phase(cfg: TicketsConfig, names: list[str], image_size: int, **extra) -> Phase:
    """Wu et al.'s NPID: a memory bank of every training image's embedding, NCE against sampled noise; one view per
    image with the contrastive augmentation (Wu et al.'s crops, jitter, grayscale and flips)."""
    objective = make_objective("npid", temperature=cfg.npid_temperature, negatives=cfg.npid_negatives,
                               momentum=cfg.npid_momentum)
    return _pretext_phase(cfg, names, objective, DATASETS[cfg.dataset].contrastive, **extra)


def s4l_phase(cfg: TicketsConfig, names: list[str], image_size: int, **extra) -> Phase:
    """Zhai et al.'s S4L (rotation variant): RotNet on every image plus cross-entropy on the labelled fraction; the
    label classifier is trained with the encoder (and evaluated on the test set)."""
    objective = make_objective("s4l", label_fraction=cfg.label_fraction, label_sampling=cfg.label_sampling)
    return _pretext_phase(cfg, names, objective, supervised_augment(cfg, image_size), with_classifier=True, **extra)


def few_labels_phase(cfg: TicketsConfig, names: list[str], image_size: int, **extra) -> Phase:
    """Cross-entropy on the labelled fraction alone (Caron et al.'s '10% Lab')."""
    objective = make_objective("few_labels", label_fraction=cfg.label_fraction, label_sampling=cfg.label_sampling)
    return _pretext_phase(cfg, names, objective, supervised_augment(cfg, image_size), with_classifier=True, **extra)


def _pretext_phase(cfg: TicketsConfig, names: list[str], objective, augment, with_classifier: bool = False,
                   **extra) -> Phase:
    """A pretext trains the encoder and its head; the label classifier only where the pretext sees labels (it is
    then evaluated on the test set)."""
    return encoder_phase("encoder", objective, names, augment, with_classifier, **_schedule(cfg), **extra)


# objective (common.engine.objectives.METHODS) -> (cfg, parameter names, image size, **Phase fields) -> its phase
PHASES: dict[str, Callable[..., Phase]] = {
    "supervised": label_phase,
    "supcon": supcon_phase,
    "rotnet": rotnet_phase,
    "exemplar": exemplar_phase,
    "simclr": simclr_phase,
    "npid": npid_phase,
    "s4l": s4l_phase,
    "few_labels": few_labels_phase,
}
