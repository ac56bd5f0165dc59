"""Log the first training batch, after augmentation, as a labelled image grid."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import numpy as np
import torch

from visionlab.drawing import labelled_grid

log = logging.getLogger(__name__)


def sample_batch(dataset, size: int) -> tuple[torch.Tensor, list[int]]:
    """``size`` items of ``dataset`` picked at random (fixed seed), as they come out of its transform.

    Read in this process without a DataLoader, so no worker starts and no generator the
    training run draws from is touched.
    """
    picks = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:size]
    items = [dataset[int(i)] for i in picks]
    return torch.stack([torch.as_tensor(x).float() for x, _ in items]), [int(y) for _, y in items]


class AugmentedBatchGrid(L.Callback):
    """At fit start, show what the model really sees: one training batch, augmented if it is.

    The batch is un-normalised with the datamodule's mean/std, captioned with class names,
    written to ``<run dir>/<name>.png``, where the name says what it is: ``augmented_batch``,
    or ``train_batch`` without augmentation. Only an augmented batch goes to TensorBoard (as
    ``train/augmented_batch``, beside the run's training curves): the plain one is the same
    picture in every run on the data, and a sweep's Time Series page opened on copies of it.
    """

    def __init__(self, max_images: int = 32) -> None:
        self.max_images = max_images

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Draw the grid once, on the main process only (nothing for data that is not images)."""
        dm = getattr(trainer.datamodule, "source", trainer.datamodule)  # the images behind cached features
        if not trainer.is_global_zero or getattr(dm, "data_config", None) is None:
            return
        images, targets = sample_batch(dm.train_set, self.max_images)
        mean = torch.tensor(dm.data_config.mean).view(1, -1, 1, 1)
        std = torch.tensor(dm.data_config.std).view(1, -1, 1, 1)
        images = (images * std + mean).clamp(0, 1)
        names = [dm.class_names[t] for t in targets]
        grid = labelled_grid(images, names)
        augmented = dm.augment is not None and bool(list(dm.augment(dm.data_config.input_size)))
        name = "augmented_batch" if augmented else "train_batch"
        out = Path(trainer.default_root_dir) / f"{name}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        grid.save(out)
        for logger in trainer.loggers if augmented else ():
            add_image = getattr(getattr(logger, "experiment", None), "add_image", None)
            if add_image is not None:
                add_image(f"train/{name}", torch.from_numpy(np.array(grid)), 0, dataformats="HWC")
        log.info("%s training batch written to %s", "augmented" if augmented else "un-augmented", out)
