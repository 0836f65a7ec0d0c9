"""Zhou, Yang, Chang & Mahoney 2023's three-regime model of pruning: a grid of dense-training temperatures (epochs,
batch size, SAM's rho) x loads (density after one-shot pruning), each cell re-trained with several seeds and
compared through linear mode connectivity (BatchNorm reset along the path) and CKA (studies/three_regime.py)."""
