"""Folders of class sub-folders: scanning, validation, stratified splitting, loading."""

from __future__ import annotations

import logging
import random
from collections import Counter
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from visionlab.data.datamodule import ClassificationDataModule
from visionlab.errors import UserError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
Sample = tuple[Path, int]
LAYOUT_HINT = "expected <root>/<class>/<image> or <root>/{train,val[,test]}/<class>/<image>"


class ImageFileDataset(Dataset):
    """(image path, label) pairs loaded with PIL as RGB and passed through ``transform``."""

    def __init__(self, samples: list[Sample], transform=None) -> None:
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        try:
            with Image.open(path) as img:
                image = img.convert("RGB")
        except (OSError, UnidentifiedImageError) as err:
            raise UserError(f"cannot read image {path}: {err}; fix or remove it, "
                            "or set data.skip_corrupt=true") from err
        return (self.transform(image) if self.transform else image), label


def scan_class_folders(root: Path, skip_corrupt: bool = False) -> tuple[list[Sample], list[str]]:
    """List the images under ``root/<class>/`` with integer labels in sorted class order.

    Every file is checked to be a readable image; a bad one is a ``UserError`` naming it,
    or is skipped and counted when ``skip_corrupt``. Fewer than two classes, or an empty
    class folder, is an error that shows the expected layout.
    """
    if not root.is_dir():
        raise UserError(f"data directory {root} does not exist ({LAYOUT_HINT})")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise UserError(f"no class sub-folders in {root} ({LAYOUT_HINT})")
    if len(class_dirs) < 2:
        raise UserError(f"only one class ('{class_dirs[0].name}') in {root}: "
                        f"a classifier needs at least two ({LAYOUT_HINT})")
    samples: list[Sample] = []
    skipped: list[Path] = []
    for label, class_dir in enumerate(class_dirs):
        files = sorted(p for p in class_dir.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise UserError(f"class folder {class_dir} is empty: add images or remove the folder")
        for path in files:
            if _is_readable_image(path):
                samples.append((path, label))
            elif skip_corrupt:
                skipped.append(path)
            else:
                raise UserError(f"{path} is not a readable image (corrupt or not an image); "
                                "fix or remove it, or set data.skip_corrupt=true to skip such files")
    if skipped:
        log.warning("skipped %d unreadable files under %s (first: %s)", len(skipped), root, skipped[0])
    return samples, [d.name for d in class_dirs]


def _is_readable_image(path: Path) -> bool:
    """True if PIL can identify and verify ``path`` as an image."""
    try:
        with Image.open(path) as img:
            img.verify()
        return True
    except Exception:  # PIL raises many types for broken files
        return False


def stratified_split(samples: list[Sample], val_fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Split each class separately so train and val keep the class proportions; seeded."""
    if not 0.0 < val_fraction < 1.0:
        raise UserError(f"data.val_fraction={val_fraction} must be between 0 and 1 (exclusive)")
    by_class: dict[int, list[Sample]] = {}
    for sample in samples:
        by_class.setdefault(sample[1], []).append(sample)
    rng = random.Random(seed)
    train, val = [], []
    for label in sorted(by_class):
        items = list(by_class[label])
        rng.shuffle(items)
        n_val = max(1, round(len(items) * val_fraction)) if len(items) > 1 else 0
        val += items[:n_val]
        train += items[n_val:]
    return train, val


def log_class_distribution(samples: list[Sample], class_names: list[str], split: str,
                           imbalance_ratio: float = 3.0) -> None:
    """Print images per class (the "check the data distribution" step) and warn on imbalance."""
    counts = Counter(label for _, label in samples)
    summary = ", ".join(f"{name}={counts.get(i, 0)}" for i, name in enumerate(class_names))
    log.info("%s: %d images, %s", split, len(samples), summary)
    present = [counts.get(i, 0) for i in range(len(class_names))]
    if min(present) == 0 or max(present) / min(present) > imbalance_ratio:
        log.warning("%s split is imbalanced (largest/smallest class = %s/%s): consider class "
                    "weights, resampling or macro-F1 as the monitored metric", split, max(present), min(present))


class ImageFolderDataModule(ClassificationDataModule):
    """A user's image folder: ``root/{train,val[,test]}/<class>/`` or ``root/<class>/``.

    With one root of class folders, ``val_fraction`` of each class (seeded, stratified)
    becomes the validation set and there is no test split.
    """

    def __init__(self, root: str, val_fraction: float = 0.2, split_seed: int = 0,
                 skip_corrupt: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.root = Path(root).expanduser()
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.skip_corrupt = skip_corrupt

    def _build(self, train_tf, eval_tf):
        if (self.root / "train").is_dir():
            train, class_names = scan_class_folders(self.root / "train", self.skip_corrupt)
            if not (self.root / "val").is_dir():
                raise UserError(f"{self.root} has train/ but no val/ ({LAYOUT_HINT})")
            val = self._scan_matching(self.root / "val", class_names)
            test = self._scan_matching(self.root / "test", class_names) if (self.root / "test").is_dir() else None
        else:
            samples, class_names = scan_class_folders(self.root, self.skip_corrupt)
            train, val = stratified_split(samples, self.val_fraction, self.split_seed)
            test = None
        for split, samples in (("train", train), ("val", val), ("test", test)):
            if samples is not None:
                log_class_distribution(samples, class_names, split)
        return (ImageFileDataset(train, train_tf), ImageFileDataset(val, eval_tf),
                ImageFileDataset(test, eval_tf) if test is not None else None, class_names)

    def _scan_matching(self, split_dir: Path, class_names: list[str]) -> list[Sample]:
        """Scan a val/test folder and check it has the same classes as train."""
        samples, names = scan_class_folders(split_dir, self.skip_corrupt)
        if names != class_names:
            raise UserError(f"{split_dir} has classes {names} but train has {class_names}: "
                            "every split needs the same class folders")
        return samples
