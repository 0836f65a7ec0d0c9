"""Corti et al. 2022: populations trained with cross-entropy and with SupCon, pruned one-shot and gradually,
compared through PIEs, Q-Score, prediction depth and UMAP."""
