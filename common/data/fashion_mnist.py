"""Fashion-MNIST (Xiao et al. 2017): 60,000 + 10,000 real 28x28 grey images of clothing in 10 classes.

Looked for, in order: `--data_dir` in torchvision's layout (`<data_dir>/FashionMNIST/raw/*-ubyte[.gz]`), the
Debian package `dataset-fashion-mnist` (`/usr/share/datasets/fashion-mnist/`), then torchvision's download into
`--data_dir`. The IDX files are read here (gzipped or not), so no checksum stands between a folder and its use.
Grey is replicated to three channels (the encoders take RGB); mean and std are measured on the training set.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from common.data.augment import ContrastiveAugment
from common.data.dataset import Dataset, DatasetInfo, grey_to_rgb, measured_normalisation
from common.errors import DataError

DEBIAN_FOLDER = Path("/usr/share/datasets/fashion-mnist")
TORCHVISION_FOLDER = Path("FashionMNIST") / "raw"  # under --data_dir
FILES = dict(train_images="train-images-idx3-ubyte", train_labels="train-labels-idx1-ubyte",
             test_images="t10k-images-idx3-ubyte", test_labels="t10k-labels-idx1-ubyte")
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
IDX_TYPES = {0x08: np.uint8}  # the only element type these files use


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (gzipped or not): magic 0x0000TTDD (T: element type, D: dimensions), D big-endian sizes,
    then the data."""
    try:
        raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
        kind, dims = raw[2], raw[3]
        shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
        data = np.frombuffer(raw, dtype=IDX_TYPES[kind], offset=4 + 4 * dims)
        return data.reshape(shape)
    except (OSError, EOFError, KeyError, ValueError, IndexError) as err:
        raise DataError(f"cannot read {path} ({type(err).__name__}): delete it and get Fashion-MNIST again")


def _files_in(folder: Path) -> dict[str, Path] | None:
    """{part: path} when the folder holds all four files (plain or gzipped), else None."""
    found = {}
    for part, name in FILES.items():
        candidates = [folder / name, folder / f"{name}.gz"]
        found[part] = next((p for p in candidates if p.is_file()), None)
    return found if all(found.values()) else None


def _download(data_dir: Path) -> None:
    from torchvision.datasets import FashionMNIST  # slow import: only to download it

    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        FashionMNIST(root=str(data_dir), train=True, download=True)
    except Exception as err:  # torchvision raises URLError, RuntimeError, OSError... for an offline machine
        raise DataError(f"Fashion-MNIST is not in {data_dir / TORCHVISION_FOLDER} nor {DEBIAN_FOLDER} and could not "
                        f"be downloaded ({type(err).__name__}): install it with `apt-get install "
                        f"dataset-fashion-mnist` (Debian), or put torchvision's {TORCHVISION_FOLDER} folder in "
                        f"{data_dir}")


def load_fashion_mnist(data_dir: Path, download: bool = True) -> Dataset:
    files = _files_in(data_dir / TORCHVISION_FOLDER) or _files_in(DEBIAN_FOLDER)
    if files is None:
        if not download:
            raise DataError(f"Fashion-MNIST is not in {data_dir / TORCHVISION_FOLDER} nor {DEBIAN_FOLDER}: install "
                            f"it with `apt-get install dataset-fashion-mnist` (Debian), or put torchvision's "
                            f"{TORCHVISION_FOLDER} folder in {data_dir}")
        _download(data_dir)
        files = _files_in(data_dir / TORCHVISION_FOLDER)
    arrays = {part: torch.from_numpy(read_idx(path).copy()) for part, path in files.items()}
    train_images, test_images = grey_to_rgb(arrays["train_images"]), grey_to_rgb(arrays["test_images"])
    mean, std = measured_normalisation(train_images)
    return Dataset(name="fashion_mnist", train_images=train_images, train_labels=arrays["train_labels"].long(),
                   test_images=test_images, test_labels=arrays["test_labels"].long(), mean=mean, std=std)


# Supervised: crop with padding + horizontal flip, no vertical flip (a flipped shoe is not a shoe in this set).
# SupCon: the same crop-resize and flip, no colour jitter and no grayscale (the images are grey already).
INFO = DatasetInfo("fashion_mnist", load_fashion_mnist, image_size=28, channels=3, class_names=CLASSES,
                   normalisation="measured on the training set", vertical_flip=False,
                   contrastive=ContrastiveAugment(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0,
                                                  jitter_p=0.0, grayscale_p=0.0))
