"""The objectives IMP can prune with, as a registry: each names the network it trains (a ModelSpec method: with a
projection head or not) and builds its training phase from the recipe. Adding a pruning objective (a
self-supervised pretext, say) is one entry here. Ticket re-training on labels is `label_phase`, the same for every
objective and mask source."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from common.data import DATASETS
from common.data.augment import supervised_augment
from common.engine.objectives import make_objective
from common.engine.phase import Phase
from common.pruning.pools import CLASSIFIER
from common.studies.tickets.config import TicketsConfig


def _schedule(cfg: TicketsConfig) -> dict:
    return dict(epochs=cfg.epochs, batch_size=cfg.batch_size, learning_rate=cfg.learning_rate,
                momentum=cfg.momentum, weight_decay=cfg.weight_decay, optimizer=cfg.optimizer,
                milestones=cfg.lr_milestones, gamma=cfg.lr_gamma)


def label_phase(cfg: TicketsConfig, names: list[str], image_size: int, **extra) -> Phase:
    """Cross-entropy on labels over the whole network: the supervised objective's IMP training and every ticket's
    re-training."""
    return Phase("train", make_objective("ce"), trainable=tuple(names), augment=supervised_augment(cfg, image_size),
                 **_schedule(cfg), **extra)


def supcon_phase(cfg: TicketsConfig, names: list[str], image_size: int, **extra) -> Phase:
    """The SupCon loss on the encoder and projection head (the classifier is not trained, and IMP never prunes
    either head)."""
    objective = make_objective("supcon", temperature=cfg.temperature, base_temperature=cfg.base_temperature)
    return Phase("encoder", objective, trainable=tuple(n for n in names if n not in CLASSIFIER),
                 augment=DATASETS[cfg.dataset].contrastive, evaluate=False, **_schedule(cfg), **extra)


@dataclass(frozen=True)
class PruningObjective:
    method: str  # the network it trains: 'supervised' (encoder + classifier) or 'supcon' (+ projection head)
    phase: Callable[..., Phase]  # (cfg, parameter names, image size, **Phase fields) -> its training phase


PRUNING_OBJECTIVES = {
    "supervised": PruningObjective("supervised", label_phase),
    "supcon": PruningObjective("supcon", supcon_phase),
}
