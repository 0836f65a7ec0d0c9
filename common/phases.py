"""The training phases several studies build alike: an objective on the encoder and its heads (never the label
classifier) and, the commonest of them, SupCon's encoder phase with its dataset's two-view augmentation."""
from __future__ import annotations

from common.data import DATASETS
from common.engine.objectives import Objective, make_objective
from common.engine.phase import Phase
from common.pruning.pools import CLASSIFIER


def encoder_phase(name: str, objective: Objective, names, augment, with_classifier: bool = False,
                  **schedule) -> Phase:
    """`objective` on the encoder and its heads; the label classifier too only `with_classifier` (an objective that
    sees labels, then evaluated on the test set). `schedule`: the Phase's other fields."""
    trainable = tuple(n for n in names if with_classifier or n not in CLASSIFIER)
    return Phase(name, objective, trainable=trainable, augment=augment, evaluate=with_classifier, **schedule)


def supcon_phase(name: str, temperature: float, base_temperature: float, names, dataset: str, **schedule) -> Phase:
    """Khosla et al.'s SupCon loss on the encoder and projection head, with the dataset's contrastive augmentation
    (two views per image): every study's SupCon encoder phase."""
    objective = make_objective("supcon", temperature=temperature, base_temperature=base_temperature)
    return encoder_phase(name, objective, names, DATASETS[dataset].contrastive, **schedule)
