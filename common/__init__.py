"""Pruning x contrastive learning: the reusable core of the toolkit.

The public API imported by users' notebooks and outside checks:
`SupConLoss`, `global_magnitude_prune`, `gmp_sparsity`, `find_pies`, `q_score`, `knn_predict`, `prediction_depth`.
"""
from common.knn import knn_predict
from common.losses import SupConLoss
from common.pies import find_pies, modal_labels
from common.prediction_depth import prediction_depth
from common.pruning import global_magnitude_prune, gmp_sparsity, layerwise_magnitude_prune, random_prune
from common.qscore import q_score

__all__ = ["SupConLoss", "global_magnitude_prune", "layerwise_magnitude_prune", "random_prune", "gmp_sparsity",
           "find_pies", "modal_labels", "q_score", "knn_predict", "prediction_depth"]
