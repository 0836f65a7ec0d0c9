"""The registry of datasets: name -> DatasetInfo (loader, image size, channels, class names, normalisation,
default augmentations). Adding a dataset is its own file with an INFO, plus one line here.

`cifar10` (the paper's), `digits` (scikit-learn's bundled 8x8 digits: the demo and the tests) and
`fashion_mnist` (real 28x28 images with 10,000 test examples, available offline from Debian).
"""
from __future__ import annotations

from pathlib import Path

from common.data import cifar10, digits, fashion_mnist
from common.data.dataset import DataError, Dataset, DatasetInfo
from common.paths import data_folder

DATASETS: dict[str, DatasetInfo] = {info.name: info for info in (cifar10.INFO, digits.INFO, fashion_mnist.INFO)}


def load_dataset(name: str, data_dir: str | Path = "", download: bool = True) -> Dataset:
    """The dataset registered as `name`, as uint8 tensors on the CPU, from `data_dir` (empty: the repository's
    data/ folder)."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}: use one of {', '.join(DATASETS)}")
    return DATASETS[name].load(data_folder(str(data_dir)), download)
