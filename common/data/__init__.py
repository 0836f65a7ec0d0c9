"""Datasets as uint8 tensors on the training device (a registry of loaders) and batched augmentation."""
from common.data.datasets import DATASETS, DataError, Dataset, load_dataset

__all__ = ["DATASETS", "DataError", "Dataset", "load_dataset"]
