"""Data loading that replays exactly after a resume: epoch-seeded shuffling and workers.

A run resumed at epoch 3 must see the batches, augmentations and worker seeds of the run
that went through epochs 0-2 in one go. Everything random in loading is therefore a
function of ``(seed, epoch)``: :class:`EpochShuffleSampler` draws each epoch's order from
its own generator, and the loader's generator (from which every iterator draws its
workers' base seed) is reseeded with the same epoch seed before each epoch's iterator.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from visionlab.errors import UserError

MAX_AUTO_WORKERS = 8


def epoch_seed(seed: int, epoch: int) -> int:
    """A seed for ``epoch`` derived from the run's ``seed`` (fits every generator's range)."""
    return (seed * 1_000_003 + epoch) % 2**32


def resolve_num_workers(num_workers: int | str) -> int:
    """``data.num_workers``: a count, or ``auto`` = one per available CPU but one (at most 8).

    The CPU left over runs the training process; one CPU means loading in that process.
    """
    if num_workers == "auto":
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return min(MAX_AUTO_WORKERS, cpus - 1)
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise UserError(f"data.num_workers={num_workers!r} must be a whole number >= 0 or auto")
    return num_workers


def worker_options(num_workers: int) -> dict:
    """DataLoader options for ``num_workers`` worker processes, started with the platform's own
    method (fork on Linux, spawn on macOS and Windows), whatever the process's default context
    is: inside a joblib (loky) sweep job that default is loky's, which cannot start them."""
    options: dict = {"num_workers": num_workers}
    if num_workers > 0:
        platform_default = multiprocessing.get_all_start_methods()[0]
        options["multiprocessing_context"] = multiprocessing.get_context(platform_default)
    return options


def train_loader(dataset: Dataset, seed: int | None, trainer, **options) -> DataLoader:
    """A shuffling DataLoader whose order and worker seeds depend only on ``(seed, epoch)``.

    Without a seed, or under a distributed strategy (Lightning's DistributedSampler then
    shuffles by seed and epoch itself), a plain shuffling loader.
    """
    if seed is None or (trainer is not None and trainer.world_size > 1):
        return DataLoader(dataset, shuffle=True, **options)
    # The epoch Lightning passes to set_epoch once this loader's first iterator exists: on
    # resume from an end-of-epoch checkpoint, trainer.current_epoch still names the finished one.
    epoch = trainer.fit_loop.epoch_progress.current.processed if trainer is not None else 0
    generator = torch.Generator()
    sampler = EpochShuffleSampler(len(dataset), seed, epoch, generator)
    return DataLoader(dataset, sampler=sampler, generator=generator, **options)


class EpochShuffleSampler(Sampler[int]):
    """A random order of ``range(size)`` that depends only on ``(seed, epoch)``.

    Lightning calls :meth:`set_epoch` before every epoch; the loader's ``generator`` (the
    source of worker seeds) is reseeded there too, so an epoch replays identically whether
    it follows the previous epoch or starts a resumed run.
    """

    def __init__(self, size: int, seed: int, epoch: int, loader_generator: torch.Generator) -> None:
        self.size = size
        self.seed = seed
        self.loader_generator = loader_generator
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch``'s order from the next iteration on, and reseed the loader's generator."""
        self.epoch = epoch
        self.loader_generator.manual_seed(epoch_seed(self.seed, epoch))

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch) ^ 0x5EED)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size
