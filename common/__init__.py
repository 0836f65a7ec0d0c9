"""Pruning x contrastive learning: the reusable core of the toolkit.

The public API imported by users' notebooks and outside checks:
`SupConLoss`, `global_magnitude_prune`, `gmp_sparsity`, `find_pies`, `q_score`, `knn_predict`, `prediction_depth`.
"""
from common.engine.losses import SupConLoss
from common.metrics.knn import knn_predict
from common.metrics.pies import find_pies, modal_labels
from common.metrics.prediction_depth import prediction_depth
from common.metrics.qscore import q_score
from common.pruning.api import global_magnitude_prune, layerwise_magnitude_prune, random_prune
from common.pruning.gmp import gmp_sparsity

__all__ = ["SupConLoss", "global_magnitude_prune", "layerwise_magnitude_prune", "random_prune", "gmp_sparsity",
           "find_pies", "modal_labels", "q_score", "knn_predict", "prediction_depth"]
