"""The LightningDataModule base every image-classification dataset shares."""

from __future__ import annotations

import logging

import lightning as L
from torch.utils.data import DataLoader, Dataset

from visionlab.data.in_memory import InMemoryBatches, decoded, in_memory_choice
from visionlab.data.loading import resolve_num_workers, train_loader, worker_options
from visionlab.data.transforms import AugmentFactory, eval_transform, train_transform
from visionlab.data_config import DataConfig
from visionlab.errors import UserError

log = logging.getLogger(__name__)


class ClassificationDataModule(L.LightningDataModule):
    """Owns the train/val/test datasets and their loaders; subclasses only find the data.

    Subclasses implement ``_build(train_transform, eval_transform)`` returning
    ``(train, val, test_or_None, class_names)``. ``data_config`` (input size, channels,
    normalisation) comes from the backbone, so resizing always matches the model.
    ``cache_features`` (``auto``, true, false) asks for training the head on cached backbone
    features (see :mod:`visionlab.finetune.feature_cache`); cached features up to
    ``cache_memory_mb`` are read into memory, larger ones memory-mapped from disk.

    Loading: ``num_workers`` (``auto``: one per CPU but one, see
    :func:`~visionlab.data.loading.resolve_num_workers`); ``pin_memory`` (``auto``: when
    training on a GPU). With a ``seed`` the training order and the workers' seeds are
    functions of ``(seed, epoch)`` (:class:`~visionlab.data.loading.EpochShuffleSampler`), so a
    resumed run replays the uninterrupted one exactly, workers or not; the training loader's
    workers therefore restart every epoch, while validation and test workers persist.
    ``in_memory`` (``auto``, true, false): the training set decoded once into one tensor on the
    training device and served as the same batches in the same order
    (:mod:`visionlab.data.in_memory`; ``auto``: when it is small, not augmented, and one process
    trains).
    """

    def __init__(
        self,
        data_config: DataConfig,
        augment: AugmentFactory | None = None,
        batch_size: int = 32,
        num_workers: int | str = 0,
        pin_memory: bool | str = "auto",
        cache_features: bool | str = False,
        cache_memory_mb: float = 1024.0,
        seed: int | None = None,
        in_memory: bool | str = False,
    ) -> None:
        super().__init__()
        if cache_features not in (True, False, "auto"):
            raise UserError(f"data.cache_features={cache_features!r} must be true, false or auto")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise UserError(f"data.batch_size={batch_size!r} must be a whole number >= 1")
        if pin_memory not in (True, False, "auto"):
            raise UserError(f"data.pin_memory={pin_memory!r} must be true, false or auto")
        self.data_config = data_config
        self.augment = augment
        self.batch_size = batch_size
        self.num_workers = resolve_num_workers(num_workers)
        self.pin_memory = pin_memory
        self.cache_features = cache_features
        self.seed = seed
        self.cache_memory_mb = cache_memory_mb
        self.in_memory = in_memory
        self._held: tuple | None = None  # the decoded training set, once in_memory decided to hold it
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None
        self.class_names: list[str] = []

    @property
    def num_classes(self) -> int:
        """Number of classes found in the data (valid after ``setup``)."""
        return len(self.class_names)

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets once; later calls (fit, then test) reuse them."""
        if self.train_set is not None:
            return
        self.train_set, self.val_set, self.test_set, self.class_names = self._build(
            train_transform(self.data_config, self.augment), eval_transform(self.data_config)
        )

    def _build(self, train_tf, eval_tf):
        raise NotImplementedError

    def _loader(self, dataset: Dataset | None, train: bool) -> DataLoader:
        if dataset is None:
            raise UserError(f"{type(self).__name__} has no such split: call setup() first, "
                            "or this dataset has no test split")
        options = {"batch_size": self.batch_size, "pin_memory": self._pin_memory(),
                   **worker_options(self.num_workers)}
        if not train:
            return DataLoader(dataset, shuffle=False, persistent_workers=self.num_workers > 0, **options)
        return train_loader(dataset, self.seed, self.trainer, **options)

    def _pin_memory(self) -> bool:
        """``pin_memory``, with ``auto`` = pinned when the trainer runs on a GPU."""
        if self.pin_memory != "auto":
            return self.pin_memory
        return self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"

    def train_dataloader(self) -> DataLoader | InMemoryBatches:
        """Shuffled, augmented training batches; from memory when ``in_memory`` holds the set."""
        world_size = self.trainer.world_size if self.trainer is not None else 1
        augments = self.augment is not None and bool(list(self.augment(self.data_config.input_size)))
        hold, why = in_memory_choice(self.in_memory, self.train_set, augments, world_size)
        if self.in_memory == "auto":
            log.info("in-memory batches (data.in_memory=auto): %s: %s", "on" if hold else "off", why)
        if not hold or self.seed is None:
            return self._loader(self.train_set, train=True)
        if self._held is None:
            device = self.trainer.strategy.root_device if self.trainer is not None else "cpu"
            self._held = tuple(tensor.to(device) for tensor in decoded(self.train_set))
        epoch = self.trainer.fit_loop.epoch_progress.current.processed if self.trainer is not None else 0
        return InMemoryBatches(*self._held, self.batch_size, self.seed, epoch)

    def val_dataloader(self) -> DataLoader:
        """Validation batches in a fixed order, never augmented."""
        return self._loader(self.val_set, train=False)

    def test_dataloader(self) -> DataLoader:
        """Test batches (the validation set when the data has no test split)."""
        return self._loader(self.test_set if self.test_set is not None else self.val_set, False)
