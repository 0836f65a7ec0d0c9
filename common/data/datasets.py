"""The registry of datasets: name -> DatasetInfo (loader, image size, channels, class names, normalisation,
default augmentations). Adding a dataset is its own file with an INFO, plus one line here.

`cifar10` (the paper's), `digits` (scikit-learn's bundled 8x8 digits: the demo and the tests) and
`fashion_mnist` (real 28x28 images with 10,000 test examples, available offline from Debian).
"""
from __future__ import annotations

from pathlib import Path

from common.data import cifar10, digits, fashion_mnist
from common.data.dataset import Dataset, DatasetInfo
from common.errors import DataError

REPO_DATA = Path(__file__).resolve().parents[2] / "data"  # the repository's data/ folder


def data_folder(data_dir: str) -> Path:
    """Where datasets live: `--data_dir` as given (relative to the working folder, as any path typed), or the
    repository's data/ folder, whatever --output_root says (one copy of a dataset serves every output root)."""
    return Path(data_dir) if data_dir else REPO_DATA


DATASETS: dict[str, DatasetInfo] = {info.name: info for info in (cifar10.INFO, digits.INFO, fashion_mnist.INFO)}


def load_dataset(name: str, data_dir: str | Path = "", download: bool = True) -> Dataset:
    """The dataset registered as `name`, as uint8 tensors on the CPU, from `data_dir` (empty: the repository's
    data/ folder)."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}: use one of {', '.join(DATASETS)}")
    return DATASETS[name].load(data_folder(str(data_dir)), download)
