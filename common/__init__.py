"""Pruning x contrastive learning: the reusable core of the toolkit.

The public API imported by users' notebooks and outside checks (docs/api.md):
`SupConLoss`, `global_magnitude_prune`, `gmp_sparsity`, `find_pies`, `q_score`, `knn_predict`, `prediction_depth`,
and for notebooks `load_checkpoint` (a checkpoint file -> network, masks, metadata), `hold_masks` (pruned weights
stay zero through training) and `one_shot_prune` (the command line's one-shot pool). Metrics take numpy or torch
and answer in the kind they were given.
"""
from common.engine.losses import SupConLoss
from common.metrics.knn import knn_predict
from common.metrics.pies import find_pies, modal_labels
from common.metrics.prediction_depth import prediction_depth
from common.metrics.qscore import q_score
from common.notebook import LoadedModel, load_checkpoint
from common.pruning.api import (HeldMasks, global_magnitude_prune, hold_masks, layerwise_magnitude_prune,
                                one_shot_prune, random_prune)
from common.pruning.gmp import gmp_sparsity

__all__ = ["SupConLoss", "global_magnitude_prune", "layerwise_magnitude_prune", "random_prune", "one_shot_prune",
           "hold_masks", "HeldMasks", "gmp_sparsity", "find_pies", "modal_labels", "q_score", "knn_predict",
           "prediction_depth", "load_checkpoint", "LoadedModel"]
