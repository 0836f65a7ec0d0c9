"""Training batches of a population: each member draws its data order and augmentation parameters from its own
generator, so a member trained inside a population sees exactly what it sees when trained alone."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from common.data import Dataset
from common.engine.timing import timed


@dataclass
class Batches:
    """The augmented, normalised images and labels of one step, for a phase's augmentation."""

    data: Dataset
    augment: object  # SupervisedAugment | ContrastiveAugment
    generators: list[torch.Generator]
    device: torch.device

    def labels(self, idx: torch.Tensor) -> torch.Tensor:
        """idx [P, B] -> labels [P, B]."""
        return self.data.train_labels[idx.to(self.data.train_labels.device)].to(self.device)

    def images(self, idx: torch.Tensor) -> torch.Tensor:
        """idx [P, B] -> one augmented view per image [P, B, C, H, W]."""
        with timed("augmentation"):
            members, batch = idx.shape
            images = self.data.train_images[idx.reshape(-1).to(self.data.train_images.device)].to(self.device)
            params = [self.augment.sample(batch, self.data.image_size, g) for g in self.generators]
            stacked = {k: torch.cat([p[k] for p in params]) for k in params[0]}
            return self.data.normalize(self.augment.apply(images, stacked)).view(members, batch, *images.shape[1:])

    def two_views(self, idx: torch.Tensor) -> torch.Tensor:
        """Two independent views per image [P, 2B, ...], view 1 then view 2 (the authors' torch.cat order)."""
        return torch.cat([self.images(idx), self.images(idx)], dim=1)


class Recorded:
    """Batches whose every output of one step is kept, so that `replayed()` gives the very same images again (SAM's
    second pass must see the batch and augmentation of its first)."""

    def __init__(self, batches: Batches):
        self.batches, self.outputs = batches, []

    def __getattr__(self, name):
        method = getattr(self.batches, name)
        if not callable(method):  # the data, the generators, the device: read as they are
            return method

        def record(*args):
            self.outputs.append(method(*args))
            return self.outputs[-1]
        return record

    def replayed(self) -> "Replayed":
        return Replayed(self.outputs, self.batches)


class Replayed:
    """What a Recorded step produced, handed out again in the same order."""

    def __init__(self, outputs: list, batches: Batches):
        self.outputs, self.batches = iter(outputs), batches

    def __getattr__(self, name):
        attribute = getattr(self.batches, name)
        return attribute if not callable(attribute) else lambda *args: next(self.outputs)
