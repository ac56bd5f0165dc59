"""Per-epoch reseeding: what makes a resumed run replay the uninterrupted one exactly.

Lightning checkpoints hold weights, optimizer, scheduler, loop and callback state, but not
the random number generators. A run resumed at epoch 3 would therefore shuffle, augment
and drop out differently from the run that went through epochs 0-2 in one go. Seeding
every generator from ``(seed, epoch)`` at each epoch start makes each epoch's randomness
a function of the epoch alone, like the freeze plan.
"""

from __future__ import annotations

import random

import lightning as L
import numpy as np
import torch
from lightning_utilities.core.apply_func import apply_to_collection
from torch.utils.data import DataLoader

from visionlab.data.loading import epoch_seed


class EpochSeedCallback(L.Callback):
    """Reseeds Python, NumPy and torch from ``(seed, epoch)`` at every training-epoch start.

    It also gives training DataLoaders without one a generator of their own. Creating a
    loader's iterator draws a seed (for its workers) from that generator, or else from
    torch's global one; Lightning creates the iterator before this hook in the first epoch
    of a run (fresh or resumed) and after it in later epochs, so drawing from the global
    generator would shift every later random number of a resumed epoch. visionlab's own
    DataModules also seed the order and the workers per epoch
    (:mod:`visionlab.data.loading`), which makes resume exact with workers too. Put this
    callback before others that use randomness.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Seed every generator for the epoch that is starting."""
        seed = epoch_seed(self.seed, trainer.current_epoch)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        apply_to_collection(trainer.train_dataloader, DataLoader, _own_generator, seed)


def _own_generator(loader: DataLoader, seed: int) -> None:
    """Give ``loader`` a private generator (seeded) if it has none."""
    if loader.generator is None:
        loader.generator = torch.Generator().manual_seed(seed)
