"""What every dataset is: uint8 image tensors with labels (`Dataset`), and what the registry knows about it
(`DatasetInfo`: loader, image size, channels, class names, normalisation rule, default augmentations).

Evaluation order is fixed: test examples keep their file order, and every analysis indexes them by position.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from common.data.augment import ContrastiveAugment
from common.errors import DataError

SUBSET_SEED = 0  # the class-balanced training subsets are drawn with this seed: the same subset for every model


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
        move = lambda t: t.to(device, non_blocking=True)  # noqa: E731
        return replace(self, train_images=move(self.train_images), train_labels=move(self.train_labels),
                       test_images=move(self.test_images), test_labels=move(self.test_labels))

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 or [0, 1] float images -> normalised float32."""
        if images.dtype == torch.uint8:
            images = images.float().div_(255)
        mean = torch.tensor(self.mean, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, -1, 1, 1)
        return (images - mean) / std

    def resized(self, size: int) -> "Dataset":
        """Every image (train and test) averaged down to size x size by area (F.interpolate mode='area': each
        output pixel the mean of the input pixels it covers), rounded back to uint8, once; 0 or the current size
        = unchanged. The normalisation stays the full-size set's (area averaging keeps the mean)."""
        if size in (0, self.image_size):
            return self
        if size > self.image_size:
            raise DataError(f"--image_size {size}: {self.name}'s images are {self.image_size}x{self.image_size}; "
                            f"ask at most {self.image_size} (downsampling only)")
        shrink = lambda t: F.interpolate(t.float(), size=(size, size), mode="area").round_().to(torch.uint8)  # noqa: E731
        return replace(self, train_images=shrink(self.train_images), test_images=shrink(self.test_images))

    def train_subset(self, size: int) -> "Dataset":
        """A class-balanced subset of `size` training examples (size // classes per class, the remainder to the
        first classes), drawn with SUBSET_SEED and kept in file order; 0 = the whole training set. The
        normalisation stays the full training set's."""
        if size == 0:
            return self
        labels = self.train_labels.cpu().numpy()
        counts = np.bincount(labels, minlength=self.num_classes)
        want = np.full(self.num_classes, size // self.num_classes) + (np.arange(self.num_classes) <
                                                                      size % self.num_classes)
        if size > len(labels) or (want > counts).any():
            raise DataError(f"--train_subset {size}: {self.name} has {len(labels)} training examples, "
                            f"{counts.min()} in its smallest class; ask at most {counts.min() * self.num_classes}")
        order = np.random.default_rng(SUBSET_SEED).permutation(len(labels))
        ranks = np.zeros(len(labels), dtype=np.int64)
        for c in range(self.num_classes):  # rank of each example within its class, in the seeded order
            members = order[labels[order] == c]
            ranks[members] = np.arange(len(members))
        keep = torch.from_numpy(np.flatnonzero(ranks < want[labels]))
        return replace(self, train_images=self.train_images[keep.to(self.train_images.device)],
                       train_labels=self.train_labels[keep.to(self.train_labels.device)])


def measured_normalisation(train_images: torch.Tensor) -> tuple[tuple, tuple]:
    """(mean, std) per channel of uint8 training images, in [0, 1] units."""
    pixels = train_images.float().div(255)
    return tuple(pixels.mean(dim=(0, 2, 3)).tolist()), tuple(pixels.std(dim=(0, 2, 3)).tolist())


def grey_to_rgb(images: torch.Tensor) -> torch.Tensor:
    """[N, H, W] or [N, 1, H, W] uint8 grey -> [N, 3, H, W]: the encoders take three channels."""
    images = images if images.dim() == 4 else images.unsqueeze(1)
    return images.expand(-1, 3, -1, -1).contiguous()


@dataclass(frozen=True)
class DatasetInfo:
    """One entry of the dataset registry: adding a dataset is one of these in its own file plus one line in
    common/data/datasets.py."""

    name: str
    load: Callable[[Path, bool], Dataset]  # (data folder, may download) -> Dataset on the CPU
    image_size: int
    channels: int  # as stored and fed to the encoder (grey datasets are replicated to 3)
    class_names: tuple
    normalisation: str  # how mean/std are set: 'measured on the training set' or where the constants come from
    vertical_flip: bool  # the supervised augmentation's vertical flip unless the recipe says otherwise
    contrastive: ContrastiveAugment = ContrastiveAugment()  # the SupCon view pipeline
