"""torchvision's downloadable datasets (MNIST, CIFAR-10, Flowers-102, ...) as DataModules.

Each dataset keeps its official splits; where it has no validation split, a stratified,
seeded ``val_fraction`` of the training split becomes one (the same helper as for image
folders). Train and val are separate views of the training data with their own
transforms, so validation images are never augmented. A missing dataset (offline, or
``download=false``) is one ``UserError`` naming the dataset, where it looked and the fix.
"""

from __future__ import annotations

import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from visionlab.data.datamodule import ClassificationDataModule
from visionlab.data.image_folder import log_class_distribution, stratified_split
from visionlab.downloads import RemoteFile
from visionlab.errors import UserError, first_line


@dataclass(frozen=True)
class TorchvisionSource:
    """How to open one torchvision dataset.

    ``cls`` is the class name in ``torchvision.datasets``; ``splits`` maps ``train`` /
    ``val`` / ``test`` to its constructor arguments (no ``val``: split off train);
    ``files`` describes what torchvision expects under ``root``, for error messages;
    ``binary`` holds the constructor arguments of a two-class variant (empty: none);
    ``url_of`` reads from the torchvision class the URL its download starts with.
    """

    cls: str
    splits: dict[str, dict[str, Any]]
    files: str
    url_of: Callable[[type], str]
    binary: dict[str, Any] = field(default_factory=dict)


SOURCES: dict[str, TorchvisionSource] = {
    "mnist": TorchvisionSource(
        "MNIST", {"train": {"train": True}, "test": {"train": False}},
        "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte",
        lambda cls: cls.mirrors[0] + cls.resources[0][0]),
    "fashion_mnist": TorchvisionSource(
        "FashionMNIST", {"train": {"train": True}, "test": {"train": False}},
        "FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte",
        lambda cls: cls.mirrors[0] + cls.resources[0][0]),
    "cifar10": TorchvisionSource(
        "CIFAR10", {"train": {"train": True}, "test": {"train": False}},
        "cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}", lambda cls: cls.url),
    "flowers102": TorchvisionSource(
        "Flowers102",
        {"train": {"split": "train"}, "val": {"split": "val"}, "test": {"split": "test"}},
        "flowers-102/{jpg/,imagelabels.mat,setid.mat}", lambda cls: cls._download_url_prefix),
    "oxford_pets": TorchvisionSource(
        "OxfordIIITPet", {"train": {"split": "trainval"}, "test": {"split": "test"}},
        "oxford-iiit-pet/{images/,annotations/}", lambda cls: cls._RESOURCES[0][0],
        binary={"target_types": "binary-category"}),
}

# What a failed download or a missing / corrupt dataset raises inside torchvision.
_LOAD_ERRORS = (RuntimeError, OSError, EOFError, tarfile.TarError, zipfile.BadZipFile)


class TransformedSubset(Dataset):
    """The samples ``indices`` of ``dataset`` passed through this view's own ``transform``.

    ``dataset`` returns untransformed (PIL image, label) pairs; a train and a val view of
    the same dataset object thus apply different transforms without sharing state.
    """

    def __init__(self, dataset: Dataset, indices: list[int], transform=None) -> None:
        self.dataset = dataset
        self.indices = indices
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int):
        image, label = self.dataset[self.indices[index]]
        return (self.transform(image) if self.transform else image), label


class TorchvisionDataModule(ClassificationDataModule):
    """One of :data:`SOURCES` (``name``), stored under ``root`` and downloaded if missing.

    ``download`` fetches the files on first use (needs network once). ``val_fraction``
    and ``split_seed`` make the validation split for datasets without an official one
    (all but flowers102). ``binary`` (oxford_pets only) turns the 37 breeds into
    cat vs dog.
    """

    def __init__(self, name: str, root: str, download: bool = True, val_fraction: float = 0.1,
                 split_seed: int = 0, binary: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        if name not in SOURCES:
            raise UserError(f"data.name={name!r} is not a torchvision dataset visionlab knows; "
                            f"use one of: {', '.join(SOURCES)}")
        self.name = name
        self.source = SOURCES[name]
        if binary and not self.source.binary:
            binary_ok = [n for n, s in SOURCES.items() if s.binary]
            raise UserError(f"data.binary=true is not supported by {name} (only by "
                            f"{', '.join(binary_ok)}): remove it")
        self.root = Path(root).expanduser()
        self.download = download
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.binary = binary

    @classmethod
    def remote_files(cls, name: str, root: str, download: bool = True, **unused) -> list[RemoteFile]:
        """The dataset's files, which ``prepare_data`` downloads into ``root`` (none with
        ``download=false``: the files must be there)."""
        if not download or name not in SOURCES:
            return []
        import torchvision.datasets

        source, folder = SOURCES[name], Path(root).expanduser()
        dataset_class = getattr(torchvision.datasets, source.cls)

        def cached() -> Path | None:
            try:
                for split in source.splits:
                    open_split(name, folder, False, False, split)
            except UserError:
                return None
            return folder

        def fetch() -> None:
            for split in source.splits:
                open_split(name, folder, True, False, split)

        return [RemoteFile(f"dataset {name} (torchvision {source.cls})", source.url_of(dataset_class), folder,
                           cached, fetch)]

    def prepare_data(self) -> None:
        """Download every split if needed (Lightning calls this on one process only)."""
        for split in self.source.splits:
            self._open(split)

    def _build(self, train_tf, eval_tf):
        train, test = self._open("train"), self._open("test")
        labels = _labels(train, self.binary)
        class_names = _class_names(train, labels, self.binary)
        # (index, label) pairs of each split; val is split off train unless it is official.
        if "val" in self.source.splits:
            val = self._open("val")
            train_part = list(enumerate(labels))
            val_part = list(enumerate(_labels(val, self.binary)))
        else:
            val = train
            train_part, val_part = stratified_split(
                list(enumerate(labels)), self.val_fraction, self.split_seed)
        test_part = list(enumerate(_labels(test, self.binary)))
        for split, part in (("train", train_part), ("val", val_part), ("test", test_part)):
            log_class_distribution(part, class_names, f"{self.name} {split}")
        return (TransformedSubset(train, [i for i, _ in train_part], train_tf),
                TransformedSubset(val, [i for i, _ in val_part], eval_tf),
                TransformedSubset(test, [i for i, _ in test_part], eval_tf),
                class_names)

    def _open(self, split: str) -> Dataset:
        """The torchvision dataset for ``split``, or one UserError saying how to get it."""
        return open_split(self.name, self.root, self.download, self.binary, split)


def open_split(name: str, root: Path, download: bool, binary: bool, split: str) -> Dataset:
    """Dataset ``name``'s ``split`` from torchvision (downloaded into ``root`` if ``download``), or
    one UserError: which dataset, where it looked, what went wrong and how to fix it."""
    import torchvision.datasets

    source = SOURCES[name]
    cls = getattr(torchvision.datasets, source.cls)
    kwargs = {**source.splits[split], **(source.binary if binary else {})}
    try:
        return cls(str(root), download=download, **kwargs)
    except ImportError as err:  # Flowers102 reads its .mat label files with scipy
        package = err.name or "scipy"
        raise UserError(f"data {name} needs the '{package}' package: pip install {package}") from err
    except _LOAD_ERRORS as err:
        reason, where = first_line(err), f"{root}/{source.files}"
        if download:
            raise UserError(f"could not download dataset {name} into {root} ({reason}): run once on a "
                            f"machine with internet access, or place the files at {where}") from err
        raise UserError(f"dataset {name} not found in {root} ({reason}): set data.download=true (needs "
                        f"internet once), or place the files at {where}") from err


def _labels(dataset: Any, binary: bool) -> list[int]:
    """Every sample's label, read from the dataset's label list without decoding images.

    torchvision keeps them in ``targets`` (MNIST, CIFAR) or ``_labels`` / ``_bin_labels``
    (Flowers102, OxfordIIITPet).
    """
    targets = dataset._bin_labels if binary else getattr(dataset, "targets", None)
    if targets is None:
        targets = dataset._labels
    return [int(t) for t in (targets.tolist() if hasattr(targets, "tolist") else targets)]


def _class_names(dataset: Any, labels: list[int], binary: bool) -> list[str]:
    """The dataset's class names, or the label numbers as strings when it has none."""
    names = dataset.bin_classes if binary else getattr(dataset, "classes", None)
    return [str(n) for n in names] if names else [str(i) for i in range(max(labels) + 1)]
