"""CIFAR-10: torchvision downloads the archive into the data folder; we then read the `cifar-10-batches-py` pickles
ourselves (torchvision's loader insists on the official md5 sums, which a tiny test folder cannot match)."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from common.data.dataset import Dataset, DatasetInfo
from common.errors import DataError

CIFAR_FOLDER = "cifar-10-batches-py"
# The authors' normalisation has std (0.2047, ...) for red, a typo for 0.2470 (paper_recipe C.15); under
# BatchNorm the first conv absorbs the scale, so we use the correct value.
CIFAR_MEAN = (0.4915, 0.4823, 0.4468)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as fh:
            entry = pickle.load(fh, encoding="latin1")
        images = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(entry.get("labels", entry.get("fine_labels")), dtype=np.int64)
    except (OSError, pickle.UnpicklingError, KeyError, ValueError, EOFError, TypeError) as err:
        raise DataError(f"cannot read {path} ({type(err).__name__}): delete {path.parent} and download again")
    return images, labels


def _download_cifar10(data_dir: Path) -> None:
    from torchvision.datasets import CIFAR10  # slow import: only to download CIFAR-10

    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        CIFAR10(root=str(data_dir), train=True, download=True)
    except Exception as err:  # torchvision raises URLError, RuntimeError, OSError... for an offline machine
        raise DataError(
            f"CIFAR-10 is not in {data_dir / CIFAR_FOLDER} and could not be downloaded ({type(err).__name__}); "
            f"put the extracted {CIFAR_FOLDER} folder in {data_dir}, or run offline on digits (--preset demo)")


def load_cifar10(data_dir: Path, download: bool = True) -> Dataset:
    folder = data_dir / CIFAR_FOLDER
    if not folder.is_dir():
        if not download:
            raise DataError(f"CIFAR-10 is not in {folder}: put the extracted {CIFAR_FOLDER} folder in {data_dir}, "
                            f"or run offline on digits (--preset demo)")
        _download_cifar10(data_dir)
    train_files = [folder / f"data_batch_{i}" for i in range(1, 6)]
    missing = [p.name for p in train_files + [folder / "test_batch"] if not p.is_file()]
    if missing:
        raise DataError(f"{folder} lacks {', '.join(missing)}: put the complete extracted {CIFAR_FOLDER} there")
    train = [_read_cifar_batch(p) for p in train_files]
    test_images, test_labels = _read_cifar_batch(folder / "test_batch")
    return Dataset(
        name="cifar10",
        train_images=torch.from_numpy(np.concatenate([x for x, _ in train])),
        train_labels=torch.from_numpy(np.concatenate([y for _, y in train])),
        test_images=torch.from_numpy(test_images),
        test_labels=torch.from_numpy(test_labels),
        mean=CIFAR_MEAN, std=CIFAR_STD)


INFO = DatasetInfo("cifar10", load_cifar10, image_size=32, channels=3, class_names=CLASSES,
                   normalisation="the authors' constants, red std corrected (docs/fidelity.md)",
                   vertical_flip=True)  # the authors' RandomVerticalFlip(0.5)
