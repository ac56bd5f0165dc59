"""Fast feature extraction: run the frozen backbone once, then train the head on its features.

The course's first transfer-learning method: with the backbone frozen and no augmentation,
every epoch would compute the same backbone outputs again. :func:`cache_features` checks
that this holds, then wraps the DataModule so that its setup runs the backbone once over
train/val/test and every later batch is a slice of pooled features ``(N, D)``; the
classifier runs only its head on them. Features stay in memory, or go to a ``.npy`` file
under the run directory (memory-mapped) when larger than ``data.cache_memory_mb``; the file
name is a hash of the backbone's weights, the pooling, the transform and the dataset files,
so a stale file is never reused.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from visionlab.errors import UserError
from visionlab.finetune.plans import FreezePlan
from visionlab.models.backbone import Backbone, pool_features

log = logging.getLogger(__name__)
LONG_RUN_EPOCHS = 1000  # horizon checked when the run has no max_epochs


class FeatureDataset(Dataset):
    """Cached features ``(N, D)`` (a tensor, or a memory-mapped array) and labels ``(N,)``.

    ``__getitems__`` returns a whole batch as two stacked tensors, so loading a batch is
    one slice instead of ``batch_size`` item lookups (use :func:`batched_collate`).
    """

    def __init__(self, features: torch.Tensor | np.ndarray, labels: torch.Tensor) -> None:
        self.features = features
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.__getitems__([index])[0][0], self.labels[index]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Features ``(B, D)`` and labels ``(B,)`` of ``indices``."""
        if isinstance(self.features, np.ndarray):
            batch = torch.from_numpy(np.ascontiguousarray(self.features[indices]))
        else:
            batch = self.features[torch.as_tensor(indices)]
        return batch, self.labels[torch.as_tensor(indices)]


def batched_collate(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The collate function for :class:`FeatureDataset`: its batches come stacked already."""
    return batch


def check_cacheable(datamodule, plan: FreezePlan, backbone: Backbone, max_epochs: int | None) -> None:
    """UserError unless cached features stay valid for the whole run.

    They do not with training augmentation (each epoch sees other images) or when any
    backbone stage trains, or its BatchNorm statistics update, in some epoch.
    """
    augment = datamodule.augment
    if augment is not None and list(augment(datamodule.data_config.input_size)):
        raise UserError("data.cache_features=true needs augment=none (cached features would miss the "
                        "training augmentation): set augment=none or data.cache_features=false")
    horizon = max_epochs if max_epochs and max_epochs > 0 else LONG_RUN_EPOCHS
    if not plan.backbone_frozen_throughout(len(backbone.stages(plan.granularity)), horizon):
        raise UserError("data.cache_features=true needs a backbone frozen for the whole run, but the plan "
                        f"trains it ({plan.describe()}; train_bn={plan.train_bn}): use "
                        "freeze=feature_extraction or data.cache_features=false")


def cache_features(datamodule, model, plan: FreezePlan, cache_dir: str | Path,
                   max_epochs: int | None) -> CachedFeatureDataModule:
    """Check the run allows caching, switch ``model`` to feature inputs, wrap ``datamodule``."""
    check_cacheable(datamodule, plan, model.backbone, max_epochs)
    model.inputs_are_features = True
    return CachedFeatureDataModule(datamodule, model.backbone, model.head.pool, cache_dir,
                                   datamodule.cache_memory_mb)


class CachedFeatureDataModule(L.LightningDataModule):
    """Serves pooled backbone features of ``source``'s splits instead of its images.

    ``setup`` extracts them once (on the trainer's device when attached to one); the
    loaders keep ``source``'s batch size and train-set shuffling. ``class_names``,
    ``num_classes`` and ``data_config`` are ``source``'s.
    """

    def __init__(self, source, backbone: Backbone, pool: str, cache_dir: str | Path,
                 max_memory_mb: float) -> None:
        super().__init__()
        self.source = source
        self.backbone = backbone
        self.pool = pool
        self.cache_dir = Path(cache_dir)
        self.max_memory_mb = max_memory_mb
        self.features: dict[str, FeatureDataset] = {}

    @property
    def class_names(self) -> list[str]:
        """The source's class names."""
        return self.source.class_names

    @property
    def num_classes(self) -> int:
        """The source's number of classes."""
        return self.source.num_classes

    @property
    def data_config(self):
        """The input the backbone expects (the source's)."""
        return self.source.data_config

    def prepare_data(self) -> None:
        """Whatever the source needs to do once (download, generate)."""
        self.source.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        """Extract the features of every split once; later calls reuse them."""
        if self.features:
            return
        self.source.setup(stage)
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        splits = {"train": self.source.train_set, "val": self.source.val_set, "test": self.source.test_set}
        for split, dataset in splits.items():
            if dataset is not None:
                self.features[split] = self._extract(split, dataset, device)

    def _extract(self, split: str, dataset: Dataset, device: torch.device) -> FeatureDataset:
        key = cache_key(self.backbone, self.pool, dataset)
        path = self.cache_dir / f"{split}-{key}.npy" if key else None
        if path is not None and path.is_file():
            log.info("feature cache: reusing %s", path)
            return FeatureDataset(np.load(path, mmap_mode="r"), torch.from_numpy(np.load(_labels(path))))
        log.info("feature cache: extracting %s features of %d images", split, len(dataset))
        return extract_features(self.backbone, self.pool, dataset, self.source.batch_size, device,
                                path, self.max_memory_mb)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(self.features[split], batch_size=self.source.batch_size, shuffle=shuffle,
                          collate_fn=batched_collate)

    def train_dataloader(self) -> DataLoader:
        """Shuffled batches of cached train features."""
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """Cached validation features in a fixed order."""
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """Cached test features (the validation ones when the data has no test split)."""
        return self._loader("test" if "test" in self.features else "val", shuffle=False)


def extract_features(backbone: Backbone, pool: str, dataset: Dataset, batch_size: int,
                     device: torch.device, path: Path | None, max_memory_mb: float) -> FeatureDataset:
    """Pooled features of every item of ``dataset``, with the backbone in eval mode.

    In memory, or written to ``path`` (``.npy``, read back memory-mapped) when they need
    more than ``max_memory_mb`` and ``path`` is given.
    """
    home = next(backbone.parameters()).device
    was_training = backbone.training
    backbone.eval().to(device)
    features: torch.Tensor | np.ndarray | None = None
    labels, start = [], 0
    try:
        with torch.no_grad():
            for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
                batch = pool_features(backbone.forward_features(x.to(device)), pool).float().cpu()
                if features is None:
                    features = _allocate(len(dataset), batch.shape[1], path, max_memory_mb)
                rows = batch.numpy() if isinstance(features, np.ndarray) else batch
                features[start:start + len(batch)] = rows
                labels.append(torch.as_tensor(y))
                start += len(batch)
    finally:
        backbone.to(home).train(was_training)
    label_tensor = torch.cat(labels)
    if isinstance(features, np.memmap):
        features.flush()
        tmp = Path(features.filename)
        np.save(_labels(path), label_tensor.numpy())
        os.replace(tmp, path)
        features = np.load(path, mmap_mode="r")
        log.info("feature cache: %s features on disk at %s", tuple(features.shape), path)
    return FeatureDataset(features, label_tensor)


def _allocate(n: int, dim: int, path: Path | None, max_memory_mb: float) -> torch.Tensor | np.ndarray:
    """A tensor for ``n x dim`` features, or a ``.npy`` memmap beside ``path`` if too large."""
    if path is None or n * dim * 4 <= max_memory_mb * 2**20:
        return torch.empty(n, dim)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
    return np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, dim))


def _labels(path: Path) -> Path:
    return path.with_name(path.stem + ".labels.npy")


def cache_key(backbone: Backbone, pool: str, dataset: Dataset) -> str | None:
    """A hash of the backbone weights, pooling, transform and dataset files, or None.

    None when the dataset's content cannot be fingerprinted (neither image files nor
    tensors): its features then stay in memory.
    """
    content = _dataset_fingerprint(dataset)
    if content is None:
        return None
    h = hashlib.sha256()
    h.update(f"{backbone.name}|{pool}|{getattr(dataset, 'transform', None)!r}|".encode())
    for name, tensor in backbone.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    h.update(content)
    return h.hexdigest()[:20]


def _dataset_fingerprint(dataset: Dataset) -> bytes | None:
    """Paths, sizes, modification times and labels of an image-file dataset, or tensor bytes."""
    samples = getattr(dataset, "samples", None)
    if samples is not None:
        parts = []
        for path, label in samples:
            stat = os.stat(path)
            parts.append(f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{label}")
        return "\n".join(parts).encode()
    if isinstance(dataset, TensorDataset):
        return b"".join(t.contiguous().numpy().tobytes() for t in dataset.tensors)
    return None
