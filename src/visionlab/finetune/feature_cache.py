"""Fast feature extraction: run the frozen backbone once, then train the head on its features.

The course's first transfer-learning method: with the backbone frozen and no augmentation,
every epoch would compute the same backbone outputs again. Whether that holds is a
question of the freeze plan, so it is answered here (:func:`stale_reason`; ``auto`` also
weighs the features' size, :func:`auto_cache_decision`);
:func:`wrap_with_feature_cache` then wraps the DataModule so that its setup runs the
backbone once over train/val/test and every later batch is a slice of pooled features
``(N, D)``. The run switches the classifier to those inputs (``inputs_are_features``).

Features are written to ``<cache_dir>/<split>-<key>.npy``, where the key hashes the
backbone's weights, the pooling, the preprocessing transform and the dataset files, so a
second run on the same data and backbone (a sweep over head hyperparameters) reads them
back instead of computing them, and a stale file is never reused. They are loaded into
memory, or memory-mapped when larger than ``max_memory_mb``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import lightning as L
import numpy as np
import torch
from rich.progress import Progress
from torch.utils.data import DataLoader, Dataset, TensorDataset

from visionlab.data.loading import train_loader, worker_options
from visionlab.data.pixels import DECODING
from visionlab.errors import UserError
from visionlab.finetune.plans import FreezePlan
from visionlab.nets.backbone import Backbone
from visionlab.nets.probe import eval_mode

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


def stale_reason(datamodule, plan: FreezePlan, backbone: Backbone, max_epochs: int | None) -> str | None:
    """Why cached features would go stale during the run, or None when they stay valid.

    They go stale with training augmentation (each epoch sees other images) or when any
    backbone stage trains, or its BatchNorm statistics update, in some epoch.
    """
    augment = datamodule.augment
    if augment is not None and list(augment(datamodule.data_config.input_size)):
        return "the training data is augmented (augment=none keeps it fixed)"
    horizon = max_epochs if max_epochs and max_epochs > 0 else LONG_RUN_EPOCHS
    if not plan.backbone_frozen_throughout(len(backbone.stages(plan.granularity)), horizon):
        return f"the plan trains the backbone ({plan.describe()}; train_bn={plan.train_bn})"
    return None


def check_cacheable(datamodule, plan: FreezePlan, backbone: Backbone, max_epochs: int | None) -> None:
    """UserError unless cached features stay valid for the whole run (``data.cache_features=true``)."""
    reason = stale_reason(datamodule, plan, backbone, max_epochs)
    if reason is not None:
        raise UserError("data.cache_features=true needs a backbone frozen for the whole run and no training "
                        f"augmentation, but {reason}: use freeze=feature_extraction augment=none, or set "
                        "data.cache_features=false (or auto: cache only when valid)")


def auto_cache_decision(datamodule, plan: FreezePlan, backbone: Backbone, feature_dim: int,
                        max_epochs: int | None) -> tuple[bool, str]:
    """``data.cache_features=auto``: whether to cache, and why, in words for the log.

    Caches when the features stay valid for the whole run (:func:`stale_reason`) and all
    splits' features fit in ``datamodule.cache_memory_mb``; otherwise the run trains end to end.
    """
    reason = stale_reason(datamodule, plan, backbone, max_epochs)
    if reason is not None:
        return False, reason
    splits = (datamodule.train_set, datamodule.val_set, datamodule.test_set)
    megabytes = sum(len(split) for split in splits if split is not None) * feature_dim * 4 / 2**20
    if megabytes > datamodule.cache_memory_mb:
        return False, (f"the features would take {megabytes:.0f} MB > data.cache_memory_mb="
                       f"{datamodule.cache_memory_mb:g} (data.cache_features=true caches them on disk)")
    return True, f"the backbone stays frozen, the data is not augmented, features take {megabytes:.1f} MB"


def wrap_with_feature_cache(datamodule, backbone: Backbone, pool: str, plan: FreezePlan,
                            cache_dir: str | Path, max_epochs: int | None) -> CachedFeatureDataModule:
    """Check that the run allows caching, then wrap ``datamodule`` to serve cached features."""
    check_cacheable(datamodule, plan, backbone, max_epochs)
    return CachedFeatureDataModule(datamodule, backbone, pool, cache_dir, datamodule.cache_memory_mb)


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
        if path is not None and path.is_file() and _labels(path).is_file():
            log.info("feature cache: reusing %s", path)
            return read_features(path, self.max_memory_mb)
        loader = DataLoader(dataset, batch_size=self.source.batch_size, shuffle=False,
                            **worker_options(self.source.num_workers))
        return extract_features(self.backbone, self.pool, loader, device, path, self.max_memory_mb,
                                desc=f"extracting {split} features")

    def _loader(self, split: str) -> DataLoader:
        return DataLoader(self.features[split], batch_size=self.source.batch_size, collate_fn=batched_collate)

    def train_dataloader(self) -> DataLoader:
        """Batches of cached train features, in the order the source's loader would give."""
        return train_loader(self.features["train"], getattr(self.source, "seed", None), self.trainer,
                            batch_size=self.source.batch_size, collate_fn=batched_collate)

    def val_dataloader(self) -> DataLoader:
        """Cached validation features in a fixed order."""
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        """Cached test features (the validation ones when the data has no test split)."""
        return self._loader("test" if "test" in self.features else "val")


def extract_features(backbone: Backbone, pool: str, loader: DataLoader, device: torch.device,
                     path: Path | None, max_memory_mb: float,
                     desc: str = "extracting features") -> FeatureDataset:
    """Pooled features of every item of ``loader``'s dataset (in order), backbone in eval mode.

    With a ``path`` they are also written there (``.npy``, plus the labels beside it, each
    moved into place only when complete) for later runs, and read back as
    :func:`read_features` does; without one they stay in memory. A progress bar shows the
    extraction.
    """
    home = next(backbone.parameters()).device
    features: np.ndarray | None = None
    labels, start = [], 0
    with eval_mode(backbone), torch.no_grad(), Progress(transient=True) as bar:
        task = bar.add_task(desc, total=len(loader))
        backbone.to(device)
        try:
            for x, y in loader:
                batch = backbone.pool(backbone.forward_features(x.to(device)), pool).float().cpu().numpy()
                if features is None:
                    features = _allocate(len(loader.dataset), batch.shape[1], path)
                features[start:start + len(batch)] = batch
                labels.append(torch.as_tensor(y))
                start += len(batch)
                bar.advance(task)
        finally:
            backbone.to(home)
    label_tensor = torch.cat(labels)
    if path is None:
        return FeatureDataset(torch.from_numpy(features), label_tensor)
    features.flush()
    _save_atomically(_labels(path), label_tensor.numpy())
    os.replace(features.filename, path)
    log.info("feature cache: %s features written to %s", tuple(features.shape), path)
    return read_features(path, max_memory_mb)


def read_features(path: Path, max_memory_mb: float) -> FeatureDataset:
    """Features cached at ``path``: in memory if they fit ``max_memory_mb``, else memory-mapped."""
    features = np.load(path, mmap_mode="r")
    labels = torch.from_numpy(np.load(_labels(path)))
    if features.nbytes <= max_memory_mb * 2**20:
        return FeatureDataset(torch.from_numpy(np.array(features)), labels)
    return FeatureDataset(features, labels)


def _allocate(n: int, dim: int, path: Path | None) -> np.ndarray:
    """An array for ``n x dim`` features: in memory, or a temporary ``.npy`` memmap beside ``path``."""
    if path is None:
        return np.empty((n, dim), dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
    return np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, dim))


def _save_atomically(path: Path, array: np.ndarray) -> None:
    """``np.save`` to a temporary name, then move into place: readers never see half a file."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def _labels(path: Path) -> Path:
    return path.with_name(path.stem + ".labels.npy")


def cache_key(backbone: Backbone, pool: str, dataset: Dataset) -> str | None:
    """A hash of the backbone weights, pooling, transform, how files are decoded
    (:data:`~visionlab.data.pixels.DECODING`) and dataset files, or None.

    None when the dataset's content cannot be fingerprinted (neither image files nor
    tensors): its features then stay in memory.
    """
    content = _dataset_fingerprint(dataset)
    if content is None:
        return None
    h = hashlib.sha256()
    h.update(f"{backbone.name}|{pool}|{getattr(dataset, 'transform', None)!r}|{DECODING}|".encode())
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
