"""Folders of class sub-folders: scanning, validation, stratified splitting, loading."""

from __future__ import annotations

import logging
import random
from collections import Counter
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from visionlab.data.datamodule import ClassificationDataModule
from visionlab.data.pixels import as_rgb
from visionlab.errors import UserError
from visionlab.image_files import is_readable_image, named_as_image

log = logging.getLogger(__name__)

Sample = tuple[Path, int]
Item = TypeVar("Item", bound=tuple[Any, int])
LAYOUT_HINT = "expected <root>/<class>/<image> or <root>/train/<class>/<image> [+ val/, test/]"
SPLIT_DIRS = ("train", "val", "test")
LISTED_CLASSES = 20  # beyond, a split's class distribution is summed up, not listed


class ImageFileDataset(Dataset):
    """(image path, label) pairs loaded with PIL as 8-bit RGB (:func:`~visionlab.data.pixels.as_rgb`)
    and passed through ``transform``."""

    def __init__(self, samples: list[Sample], transform=None) -> None:
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        try:
            with Image.open(path) as img:
                image = as_rgb(img)
        except (OSError, UnidentifiedImageError) as err:
            raise UserError(f"cannot read image {path}: {err}; fix or remove it, "
                            "or set data.skip_corrupt=true") from err
        return (self.transform(image) if self.transform else image), label


def scan_class_folders(root: Path, skip_corrupt: bool = False) -> tuple[list[Sample], list[str]]:
    """List the images under ``root/<class>/`` with integer labels in sorted class order.

    Files that are not images by their extension (notes, ``Thumbs.db``, annotations) are left out
    and counted in one line, as torchvision's and Keras's folder loaders leave them out. Every
    image file is checked to be readable; a bad one is a ``UserError`` naming it, or is skipped and
    counted when ``skip_corrupt``. A missing ``root``, fewer than two classes, or a class folder
    without (readable) images is an error showing the fix.
    """
    if root.is_file():
        raise UserError(f"data directory {root} is a file, not a folder: set data.root to your image "
                        f"folder ({LAYOUT_HINT})")
    if not root.is_dir():
        raise UserError(f"data directory {root} does not exist: set data.root to your image "
                        f"folder ({LAYOUT_HINT})")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise UserError(f"no class sub-folders in {root}: put each class's images in its own "
                        f"sub-folder ({LAYOUT_HINT})")
    if len(class_dirs) < 2:
        raise UserError(f"only one class ('{class_dirs[0].name}') in {root}: a classifier "
                        f"needs at least two class sub-folders ({LAYOUT_HINT})")
    samples: list[Sample] = []
    skipped: list[Path] = []
    others: list[Path] = []
    for label, class_dir in enumerate(class_dirs):
        found = sorted(p for p in class_dir.rglob("*")  # broken links too: a link to a moved image
                       if (p.is_file() or p.is_symlink() and not p.exists()) and not p.name.startswith("."))
        files = []
        for path in found:
            (files if named_as_image(path) else others).append(path)
        readable = 0
        for path in files:
            if is_readable_image(path):
                samples.append((path, label))
                readable += 1
            elif skip_corrupt:
                skipped.append(path)
            else:
                what = ("a broken link (its target is gone)" if not path.exists()
                        else "not a readable image (corrupt or not an image)")
                raise UserError(f"{path} is {what}: fix or remove it, or set data.skip_corrupt=true to skip "
                                "such files")
        if not readable:
            what = ("has no readable images" if files else
                    f"has no images ({len(found)} other file(s))" if found else "is empty")
            raise UserError(f"class folder {class_dir} {what}: add images or remove the folder")
    if others:
        kinds = sorted({p.suffix.lower() or p.name for p in others})
        log.info("left out %d file(s) under %s that are not images by their extension (%s)", len(others),
                 root, ", ".join(kinds[:5]))
    if skipped:
        log.warning("skipped %d unreadable file(s) under %s (first: %s)",
                    len(skipped), root, skipped[0])
    return samples, [d.name for d in class_dirs]


def stratified_split(items: list[Item], val_fraction: float,
                     seed: int) -> tuple[list[Item], list[Item]]:
    """Split ``(anything, label)`` items into train and val, class by class; seeded.

    Each class contributes ``round(n * val_fraction)`` items to val, but at least one and
    never all of them (a class of one image stays in train), so both splits keep the class
    proportions. The same items, fraction and seed always give the same split.
    """
    if not 0.0 < val_fraction < 1.0:
        raise UserError(f"data.val_fraction={val_fraction} must be between 0 and 1 (exclusive)")
    by_class: dict[int, list[Item]] = {}
    for item in items:
        by_class.setdefault(item[1], []).append(item)
    rng = random.Random(seed)
    train: list[Item] = []
    val: list[Item] = []
    for label in sorted(by_class):
        members = list(by_class[label])
        rng.shuffle(members)
        n_val = min(len(members) - 1, max(1, round(len(members) * val_fraction)))
        val += members[:n_val]
        train += members[n_val:]
    return train, val


def log_class_distribution(samples: list[tuple[Any, int]], class_names: list[str], split: str,
                           imbalance_ratio: float = 3.0) -> None:
    """Log images per class (the "check the data distribution" step); warn on imbalance.

    A split is imbalanced when some class is missing or the largest class has more than
    ``imbalance_ratio`` times the images of the smallest.
    """
    counts = Counter(label for _, label in samples)
    named = [f"{name}={counts.get(i, 0)}" for i, name in enumerate(class_names)]
    if len(class_names) > LISTED_CLASSES:  # a line per split, not thousands of characters
        order = sorted(range(len(class_names)), key=lambda i: counts.get(i, 0))
        fewest, most = counts.get(order[0], 0), counts.get(order[-1], 0)
        ends = [", ".join(named[i] for i in part) for part in (order[:3], order[-3:])]
        named = [f"{len(class_names)} classes, {fewest}-{most} images each "
                 f"(fewest: {ends[0]}; most: {ends[1]})"]
    log.info("%s: %d images, %s", split, len(samples), ", ".join(named))
    present = [counts.get(i, 0) for i in range(len(class_names))]
    if min(present) == 0 or max(present) / min(present) > imbalance_ratio:
        log.warning("%s split is imbalanced (largest/smallest class = %s/%s): consider class "
                    "weights, resampling or macro-F1 as the monitored metric",
                    split, max(present), min(present))


def log_input_size(samples: list[Sample], input_size: int, sampled: int = 20) -> None:
    """Say the size the images are resized to, beside theirs (the median of ``sampled`` of them,
    read from their headers), and when that upscales small images several times over: a timm
    model's default input is its pretrained size (224 px, 176 px...), which costs tens of times the
    compute of the images' own size and rarely helps them."""
    if not samples:
        return
    step = max(1, len(samples) // sampled)
    sides = []
    for path, _ in samples[::step][:sampled]:
        with Image.open(path) as image:
            sides.append(min(image.size))
    sides.sort()
    median = sides[len(sides) // 2]
    log.info("images: resized to %dx%d px for the model (theirs: %d px on the short side, median of %d)",
             input_size, input_size, median, len(sides))
    if input_size >= 4 * median:
        log.info("the images are upscaled %.0fx: a smaller input (e.g. backbone.input_size=%d for a "
                 "classifier, model.image_size for a GAN) trains on a fraction of the compute",
                 input_size / median, max(32, median))


class ImageFolderDataModule(ClassificationDataModule):
    """A user's image folder: ``root/<class>/`` or ``root/train/<class>/`` [+ ``val/``, ``test/``].

    Without a ``val/`` folder, ``val_fraction`` of each training class (seeded by
    ``split_seed``, stratified) becomes the validation set. Without ``test/`` there is no
    test split (testing then uses the validation set). ``skip_corrupt`` skips unreadable
    files with a warning instead of stopping. ``held_out``: no image of ``root`` was trained on
    (a folder other than the run's, evaluated): without a ``train/`` folder, ``root/test/<class>/``,
    else ``root/val/<class>/``, else ``root/<class>/`` is then the test set, whole (no validation
    split is taken from it, and a ``test/`` folder alone is no layout mistake).
    """

    def __init__(self, root: str, val_fraction: float = 0.2, split_seed: int = 0,
                 skip_corrupt: bool = False, held_out: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.root = Path(root).expanduser()
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.skip_corrupt = skip_corrupt
        self.held_out = held_out

    def setup(self, stage: str | None = None) -> None:
        """As :meth:`ClassificationDataModule.setup`; a held-out folder is refused for training."""
        if self.held_out and stage == "fit":
            raise UserError(f"data.held_out=true makes {self.root} a test set that no image of is trained on "
                            "(eval sets it for another folder): a training run cannot use it; remove "
                            "data.held_out")
        super().setup(stage)

    def _build(self, train_tf, eval_tf):
        present = [name for name in SPLIT_DIRS if (self.root / name).is_dir()]
        if self.held_out and "train" not in present:  # a test set alone: its test/, val/ or <class>/ folders
            source = next((self.root / name for name in ("test", "val") if name in present), self.root)
            test, class_names = scan_class_folders(source, self.skip_corrupt)
            log_class_distribution(test, class_names, "test")
            empty = ImageFileDataset([], eval_tf)
            return empty, empty, ImageFileDataset(test, eval_tf), class_names
        if present and "train" not in present:
            raise UserError(f"{self.root} has {'/, '.join(present)}/ but no train/ folder: "
                            f"rename your training folder to train/ ({LAYOUT_HINT})")
        if present:
            train, class_names = scan_class_folders(self.root / "train", self.skip_corrupt)
            test = self._scan_matching("test", class_names) if "test" in present else None
            if "val" in present:
                val = self._scan_matching("val", class_names)
            else:
                log.info("%s has no val/ folder: using %.0f%% of train/ for validation",
                         self.root, 100 * self.val_fraction)
                train, val = stratified_split(train, self.val_fraction, self.split_seed)
        else:
            samples, class_names = scan_class_folders(self.root, self.skip_corrupt)
            train, val = stratified_split(samples, self.val_fraction, self.split_seed)
            test = None
        for split, samples in (("train", train), ("val", val), ("test", test)):
            if samples is not None:
                log_class_distribution(samples, class_names, split)
        log_input_size(train, self.data_config.input_size)
        return (ImageFileDataset(train, train_tf), ImageFileDataset(val, eval_tf),
                ImageFileDataset(test, eval_tf) if test is not None else None, class_names)

    def _scan_matching(self, split: str, class_names: list[str]) -> list[Sample]:
        """Scan the ``split`` folder and check it has the same classes as train/."""
        split_dir = self.root / split
        samples, names = scan_class_folders(split_dir, self.skip_corrupt)
        if names != class_names:
            raise UserError(f"{split_dir} has classes {names} but train/ has {class_names}: "
                            "every split needs the same class folders")
        return samples
