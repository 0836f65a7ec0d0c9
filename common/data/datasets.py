"""Datasets as uint8 tensors that live on the training device.

`cifar10`: torchvision downloads the archive into `--data_dir`; we then read the `cifar-10-batches-py` pickles
ourselves (torchvision's loader insists on the official md5 sums, which a tiny test folder cannot match).
`digits`: scikit-learn's bundled 8x8 digits, the offline dataset for CPU runs, the demo and the tests.

Evaluation order is fixed: test examples keep their file order, and every analysis indexes them by position.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common.paths import data_folder

CIFAR_FOLDER = "cifar-10-batches-py"
# The authors' normalisation has std (0.2047, ...) for red, a typo for 0.2470 (paper_recipe C.15); under
# BatchNorm the first conv absorbs the scale, so we use the correct value.
CIFAR_MEAN = (0.4915, 0.4823, 0.4468)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
DIGITS_SIZE = 8  # the digits are 8x8: kept at their resolution (the encoders pool adaptively)


class DataError(Exception):
    """A dataset that cannot be found or read: one line saying where it should be."""


@dataclass(frozen=True)
class Dataset:
    name: str
    train_images: torch.Tensor  # uint8 [N, 3, H, W]
    train_labels: torch.Tensor  # int64 [N]
    test_images: torch.Tensor
    test_labels: torch.Tensor
    mean: tuple
    std: tuple
    num_classes: int = 10

    @property
    def image_size(self) -> int:
        return self.train_images.shape[-1]

    def to(self, device) -> "Dataset":
        move = lambda t: t.to(device, non_blocking=True)
        return replace(self, train_images=move(self.train_images), train_labels=move(self.train_labels),
                       test_images=move(self.test_images), test_labels=move(self.test_labels))

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 or [0, 1] float images -> normalised float32."""
        if images.dtype == torch.uint8:
            images = images.float().div_(255)
        mean = torch.tensor(self.mean, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, -1, 1, 1)
        return (images - mean) / std


def load_dataset(name: str, data_dir: str | Path = "", download: bool = True) -> Dataset:
    """The dataset registered as `name` (DATASETS), as uint8 tensors on the CPU, from `data_dir` (empty: the
    repository's data/ folder)."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}: use one of {', '.join(DATASETS)}")
    return DATASETS[name](data_folder(str(data_dir)), download)


# ---- CIFAR-10 ------------------------------------------------------------------------------------

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
    from torchvision.datasets import CIFAR10

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


# ---- digits --------------------------------------------------------------------------------------

def load_digits(test_fraction: float = 0.2, split_seed: int = 0) -> Dataset:
    """scikit-learn's 1,797 8x8 digits: fixed stratified split (1,437 train / 360 test), grey replicated to 3
    channels, uint8 at DIGITS_SIZE."""
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    digits = sk_digits()
    images = torch.from_numpy(digits.images).float().div(16).unsqueeze(1)  # [N, 1, 8, 8] in [0, 1]
    images = F.interpolate(images, size=DIGITS_SIZE, mode="bilinear", align_corners=False)
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(digits.target).long()
    train_idx, test_idx = train_test_split(np.arange(len(labels)), test_size=test_fraction,
                                           stratify=digits.target, random_state=split_seed)
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    train_float = images[train_idx].float() / 255
    mean = tuple(train_float.mean(dim=(0, 2, 3)).tolist())
    std = tuple(train_float.std(dim=(0, 2, 3)).tolist())
    return Dataset(name="digits", train_images=images[train_idx], train_labels=labels[train_idx],
                   test_images=images[test_idx], test_labels=labels[test_idx], mean=mean, std=std)


# name -> loader(data_dir, download): adding a dataset is one entry here
DATASETS = {
    "cifar10": load_cifar10,
    "digits": lambda data_dir, download: load_digits(),
}
