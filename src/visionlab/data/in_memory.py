"""A small training set held decoded in one tensor, on the training device, and served as the very
batches its DataLoader would give: the order of :class:`~visionlab.data.loading.EpochShuffleSampler`
(a function of ``(seed, epoch)``, so a resumed run replays exactly), without decoding, transforming
and collating every image again every epoch. What a GAN on a few thousand small images spends much
of its step on (``data.in_memory``, decided by :func:`in_memory_choice`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Dataset

from visionlab.data.loading import EpochShuffleSampler
from visionlab.errors import UserError

AUTO_LIMIT_MB = 512  # `auto` holds a training set up to this size, decoded


def decoded(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """Every ``(image, label)`` of ``dataset``, stacked: ``(N, ...)`` and ``(N,)``."""
    images, labels = zip(*(dataset[index] for index in range(len(dataset))), strict=True)
    return torch.stack(images), torch.as_tensor(labels)


def in_memory_choice(choice: bool | str, dataset: Dataset, augmented: bool, world_size: int
                     ) -> tuple[bool, str]:
    """Whether to hold ``dataset`` in memory, and why: ``data.in_memory`` true or false as asked;
    ``auto`` when the decoded set fits :data:`AUTO_LIMIT_MB`, its transforms are not random (an
    augmented set must be decoded anew every epoch) and one process trains (DDP shards its loader)."""
    if choice not in (True, False, "auto"):
        raise UserError(f"data.in_memory={choice!r} must be true, false or auto")
    if choice is True and (augmented or world_size > 1):
        raise UserError("data.in_memory=true holds one decoded copy of the training set, and this run "
                        f"{'augments it every epoch' if augmented else 'shards it over processes'}: "
                        "set data.in_memory=false (or auto)")
    if choice != "auto":
        return bool(choice), "asked"
    if augmented or world_size > 1:
        return False, "augmented every epoch" if augmented else "several processes"
    first, _ = dataset[0]
    megabytes = len(dataset) * first.numel() * first.element_size() / 2**20
    if megabytes > AUTO_LIMIT_MB:
        return False, f"{megabytes:.0f} MB decoded, above {AUTO_LIMIT_MB} MB"
    return True, f"{len(dataset)} images, {megabytes:.1f} MB decoded"


class InMemoryBatches:
    """Batches of ``batch_size`` from ``images`` and ``labels`` in the order the run's DataLoader would
    draw them. Lightning sets each epoch through :attr:`sampler` (its ``set_epoch``)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int, epoch: int,
                 drop_last: bool = False) -> None:
        self.images, self.labels, self.batch_size, self.drop_last = images, labels, batch_size, drop_last
        self.sampler = EpochShuffleSampler(len(images), seed, epoch, torch.Generator())

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.tensor(list(iter(self.sampler)), device=self.images.device)
        for start in range(0, len(order) - (self.batch_size - 1 if self.drop_last else 0), self.batch_size):
            batch = order[start:start + self.batch_size]
            yield self.images[batch], self.labels[batch]

    def __len__(self) -> int:
        rounding = math.floor if self.drop_last else math.ceil
        return rounding(len(self.images) / self.batch_size)
