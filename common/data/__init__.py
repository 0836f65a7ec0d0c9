"""Datasets as uint8 tensors on the training device (a registry, common.data.datasets) and batched augmentation."""
from common.data.dataset import Dataset, DatasetInfo
from common.data.datasets import DATASETS, load_dataset

__all__ = ["DATASETS", "Dataset", "DatasetInfo", "load_dataset"]
