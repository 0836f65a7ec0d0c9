"""scikit-learn's bundled 8x8 digits: the offline dataset for CPU runs, the demo and the tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common.data.dataset import Dataset, DatasetInfo, grey_to_rgb, measured_normalisation

DIGITS_SIZE = 8  # the digits are 8x8: kept at their resolution (the encoders pool adaptively)


def load_digits(test_fraction: float = 0.2, split_seed: int = 0) -> Dataset:
    """scikit-learn's 1,797 8x8 digits: fixed stratified split (1,437 train / 360 test), grey replicated to 3
    channels, uint8 at DIGITS_SIZE."""
    from sklearn.datasets import load_digits as sk_digits  # slow import: only when digits are used
    from sklearn.model_selection import train_test_split  # as above

    digits = sk_digits()
    images = torch.from_numpy(digits.images).float().div(16).unsqueeze(1)  # [N, 1, 8, 8] in [0, 1]
    images = F.interpolate(images, size=DIGITS_SIZE, mode="bilinear", align_corners=False)
    images = grey_to_rgb((images.clamp(0, 1) * 255).round().to(torch.uint8))
    labels = torch.from_numpy(digits.target).long()
    train_idx, test_idx = train_test_split(np.arange(len(labels)), test_size=test_fraction,
                                           stratify=digits.target, random_state=split_seed)
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    mean, std = measured_normalisation(images[train_idx])
    return Dataset(name="digits", train_images=images[train_idx], train_labels=labels[train_idx],
                   test_images=images[test_idx], test_labels=labels[test_idx], mean=mean, std=std)


def _load(data_dir: Path, download: bool) -> Dataset:
    return load_digits()  # bundled with scikit-learn: no folder, no download


INFO = DatasetInfo("digits", _load, image_size=DIGITS_SIZE, channels=3, class_names=tuple(map(str, range(10))),
                   normalisation="measured on the training set", vertical_flip=False)  # a flipped 6 is a 9
