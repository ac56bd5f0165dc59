"""User image folders: layouts, the stratified seeded split, the distribution log, bad input."""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny import invert

from visionlab.data.image_folder import (
    ImageFolderDataModule,
    log_class_distribution,
    scan_class_folders,
    stratified_split,
)
from visionlab.data.transforms import eval_transform
from visionlab.data_config import DataConfig
from visionlab.errors import UserError

RGB_16 = DataConfig(3, 16, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def make_folder(root: Path, counts: dict[str, int], size: int = 12) -> Path:
    """``root/<class>/<i>.png`` with ``counts[class]`` small images per class."""
    for k, (name, n) in enumerate(counts.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (size, size), (30 * k, 8 * i, 100)).save(root / name / f"{i}.png")
    return root


def module(root: Path, **kwargs) -> ImageFolderDataModule:
    return ImageFolderDataModule(root=str(root), data_config=RGB_16, batch_size=4, **kwargs)


# --- split --------------------------------------------------------------------------------


def test_split_is_stratified_and_seeded():
    items = [(f"a{i}", 0) for i in range(10)] + [(f"b{i}", 1) for i in range(20)]
    items += [("c0", 2), ("c1", 2)]
    train, val = stratified_split(items, 0.2, seed=7)
    assert Counter(y for _, y in val) == {0: 2, 1: 4, 2: 1}  # proportional, every class in val
    assert Counter(y for _, y in train) == {0: 8, 1: 16, 2: 1}
    assert sorted(train + val) == sorted(items)
    assert stratified_split(items, 0.2, seed=7) == (train, val)
    assert stratified_split(items, 0.2, seed=8) != (train, val)


def test_split_keeps_at_least_one_training_image_per_class():
    train, val = stratified_split([("a", 0), ("b", 0), ("c", 1), ("d", 1), ("e", 1)], 0.9, seed=0)
    assert Counter(y for _, y in train) == {0: 1, 1: 1}
    assert Counter(y for _, y in val) == {0: 1, 1: 2}


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_bad_val_fraction_is_a_user_error(fraction):
    with pytest.raises(UserError, match=f"data.val_fraction={fraction}"):
        stratified_split([("a", 0), ("b", 1)], fraction, seed=0)


# --- layouts ------------------------------------------------------------------------------


def test_flat_layout_splits_off_val_and_val_is_not_augmented(tmp_path):
    make_folder(tmp_path, {"cat": 10, "dog": 5})
    dm = module(tmp_path, val_fraction=0.2, split_seed=1, augment=invert)
    dm.setup("fit")
    assert dm.class_names == ["cat", "dog"]
    assert (len(dm.train_set), len(dm.val_set), dm.test_set) == (12, 3, None)
    assert Counter(label for _, label in dm.val_set.samples) == {0: 2, 1: 1}
    plain = eval_transform(RGB_16)
    val_path, _ = dm.val_set.samples[0]
    assert torch.equal(dm.val_set[0][0], plain(Image.open(val_path)))  # val is never inverted
    train_path, _ = dm.train_set.samples[0]
    assert torch.allclose(dm.train_set[0][0], -plain(Image.open(train_path)), atol=1e-6)
    images, _ = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, 16, 16)
    assert len(list(dm.test_dataloader())) == 1  # no test/: testing uses val
    again = module(tmp_path, val_fraction=0.2, split_seed=1)
    again.setup("fit")
    assert again.val_set.samples == dm.val_set.samples


def test_train_val_test_layout(tmp_path):
    for split, n in (("train", 4), ("val", 2), ("test", 3)):
        make_folder(tmp_path / split, {"a": n, "b": n})
    dm = module(tmp_path)
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (8, 4, 6)
    assert all(path.parts[-3] == "test" for path, _ in dm.test_set.samples)


def test_a_held_out_folder_is_test_data_whole_in_the_class_layout_and_by_its_test_split_otherwise(tmp_path):
    make_folder(tmp_path / "flat", {"a": 3, "b": 4})
    dm = module(tmp_path / "flat", held_out=True)  # a folder the model never trained on
    dm.setup("test")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (0, 0, 7)
    assert [batch[1].tolist() for batch in dm.test_dataloader()] == [[0, 0, 0, 1], [1, 1, 1]]
    for split, n in (("train", 4), ("test", 2)):
        make_folder(tmp_path / "split" / split, {"a": n, "b": n})
    dm = module(tmp_path / "split", held_out=True)
    dm.setup("test")
    assert len(dm.test_set) == 4 and all(path.parts[-3] == "test" for path, _ in dm.test_set.samples)
    for alone in ("test", "val"):  # a test set on its own is no layout mistake here
        make_folder(tmp_path / f"{alone}_alone" / alone, {"a": 2, "b": 3})
        dm = module(tmp_path / f"{alone}_alone", held_out=True)
        dm.setup("test")
        assert dm.class_names == ["a", "b"] and len(dm.test_set) == 5
    with pytest.raises(UserError, match="has test/ but no train/ folder"):  # for training it is
        module(tmp_path / "test_alone").setup("fit")


def test_a_held_out_folder_is_refused_for_training(tmp_path):
    make_folder(tmp_path, {"a": 3, "b": 3})
    with pytest.raises(UserError, match=r"data.held_out=true makes .* a test set .* remove data.held_out"):
        module(tmp_path, held_out=True).setup("fit")
    module(tmp_path, held_out=True).setup("test")  # what eval asks of it


def test_train_without_val_splits_val_off_train(tmp_path):
    make_folder(tmp_path / "train", {"a": 5, "b": 5})
    make_folder(tmp_path / "test", {"a": 1, "b": 1})
    dm = module(tmp_path, val_fraction=0.2)
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (8, 2, 2)
    assert all(path.parts[-3] == "train" for path, _ in dm.val_set.samples)


def test_val_without_train_is_a_user_error(tmp_path):
    make_folder(tmp_path / "val", {"a": 1, "b": 1})
    with pytest.raises(UserError, match="no train/ folder"):
        module(tmp_path).setup("fit")


def test_splits_with_different_classes_are_a_user_error(tmp_path):
    make_folder(tmp_path / "train", {"a": 2, "b": 2})
    make_folder(tmp_path / "val", {"a": 1, "c": 1})
    with pytest.raises(UserError, match=r"val has classes \['a', 'c'\] but train/ has \['a', 'b'"):
        module(tmp_path).setup("fit")


def test_class_distribution_is_logged_and_imbalance_warned(tmp_path, caplog):
    make_folder(tmp_path, {"common": 20, "rare": 3})
    with caplog.at_level(logging.INFO, logger="visionlab.data.image_folder"):
        module(tmp_path, val_fraction=0.3).setup("fit")
    assert "train: 16 images, common=14, rare=2" in caplog.text
    assert "val: 7 images, common=6, rare=1" in caplog.text
    assert "train split is imbalanced (largest/smallest class = 14/2)" in caplog.text


def test_the_input_size_is_said_beside_the_images_and_a_large_upscale_suggests_a_smaller_one(tmp_path,
                                                                                               caplog):
    make_folder(tmp_path, {"a": 5, "b": 5}, size=12)
    with caplog.at_level(logging.INFO, logger="visionlab.data.image_folder"):
        module(tmp_path).setup("fit")  # 16 px: a third more than the images' 12 px
    said = "images: resized to 16x16 px for the model (theirs: 12 px on the short side, median of 8)"
    assert said in caplog.text
    assert "upscaled" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="visionlab.data.image_folder"):
        ImageFolderDataModule(root=str(tmp_path), data_config=DataConfig(3, 176, (0.5,) * 3, (0.5,) * 3),
                              batch_size=4).setup("fit")  # a timm model's pretrained size
    assert "the images are upscaled 15x: a smaller input (e.g. backbone.input_size=32 for a" in caplog.text


def test_the_distribution_of_many_classes_is_summed_up_in_one_short_line(tmp_path, caplog):
    make_folder(tmp_path, {f"c{k:02d}": 2 + (k == 7) for k in range(25)})
    with caplog.at_level(logging.INFO, logger="visionlab.data.image_folder"):
        scanned, names = scan_class_folders(tmp_path)
        log_class_distribution(scanned, names, "train")
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("train:")]
    assert line.startswith("train: 51 images, 25 classes, 2-3 images each (fewest: c00=2, c01=2, c02=2; "
                           "most: ")
    assert line.endswith("c07=3)") and len(line) < 150


def test_balanced_data_gives_no_imbalance_warning(tmp_path, caplog):
    make_folder(tmp_path, {"a": 5, "b": 5})
    with caplog.at_level(logging.INFO, logger="visionlab.data.image_folder"):
        module(tmp_path).setup("fit")
    assert "imbalanced" not in caplog.text


# --- bad input ----------------------------------------------------------------------------


def test_missing_data_dir(tmp_path):
    missing = re.escape(str(tmp_path / "nope"))
    with pytest.raises(UserError, match=f"data directory {missing} does not exist.*data.root"):
        module(tmp_path / "nope").setup("fit")


def test_no_class_folders(tmp_path):
    (tmp_path / "loose.png").write_bytes(b"")
    with pytest.raises(UserError, match=f"no class sub-folders in {re.escape(str(tmp_path))}"):
        module(tmp_path).setup("fit")


def test_only_one_class(tmp_path):
    make_folder(tmp_path, {"cat": 3})
    with pytest.raises(UserError, match="only one class \\('cat'\\).*at least two"):
        module(tmp_path).setup("fit")


def test_empty_class_folder(tmp_path):
    make_folder(tmp_path, {"cat": 3})
    (tmp_path / "dog").mkdir()
    empty = re.escape(str(tmp_path / "dog"))
    with pytest.raises(UserError, match=f"class folder {empty} is empty"):
        module(tmp_path).setup("fit")


@pytest.mark.parametrize(("name", "content"), [("broken.png", b"\x89PNG\r\n\x1a\n garbage"),
                                               ("notes.JPG", b"not an image")])
def test_unreadable_file_is_named(tmp_path, name, content):
    make_folder(tmp_path, {"cat": 3, "dog": 3})
    (tmp_path / "dog" / name).write_bytes(content)
    path = re.escape(str(tmp_path / "dog" / name))
    with pytest.raises(UserError, match=f"{path} is not a readable image.*skip_corrupt"):
        module(tmp_path).setup("fit")


def test_skip_corrupt_skips_and_counts(tmp_path, caplog):
    make_folder(tmp_path, {"cat": 3, "dog": 3})
    (tmp_path / "dog" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    (tmp_path / "cat" / "broken.png").write_text("hello")
    with caplog.at_level(logging.WARNING):
        samples, names = scan_class_folders(tmp_path, skip_corrupt=True)
    assert len(samples) == 6 and names == ["cat", "dog"]
    assert "skipped 2 unreadable file(s)" in caplog.text


def test_files_that_are_not_images_by_their_extension_are_left_out_and_counted(tmp_path, caplog):
    """A README, Windows' Thumbs.db or a labels file beside the images is no image of the dataset
    (torchvision's and Keras's folder loaders leave them out too); a class of only such is an error."""
    make_folder(tmp_path, {"cat": 3, "dog": 3})
    (tmp_path / "cat" / "README.txt").write_text("photos from the shelter")
    (tmp_path / "dog" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (tmp_path / "dog" / "more").mkdir()
    Image.new("RGB", (12, 12)).save(tmp_path / "dog" / "more" / "nested.PNG")  # an image, however named
    with caplog.at_level(logging.INFO, logger="visionlab.data.image_folder"):
        samples, names = scan_class_folders(tmp_path)
    assert len(samples) == 7 and all(path.suffix.lower() == ".png" for path, _ in samples)
    assert "left out 2 file(s) under" in caplog.text and "(.db, .txt)" in caplog.text
    (tmp_path / "bird").mkdir()
    (tmp_path / "bird" / "labels.csv").write_text("a,b")
    with pytest.raises(UserError, match="bird has no images \\(1 other file\\(s\\)\\): add images"):
        scan_class_folders(tmp_path)


def test_class_with_only_corrupt_files_is_an_error_even_when_skipping(tmp_path):
    make_folder(tmp_path, {"cat": 3})
    (tmp_path / "dog").mkdir()
    (tmp_path / "dog" / "broken.png").write_bytes(b"junk")
    with pytest.raises(UserError, match="dog has no readable images"):
        scan_class_folders(tmp_path, skip_corrupt=True)


def test_a_folder_of_16_bit_and_float_images_is_read_as_its_8_bit_twin(tmp_path):
    """The training data's loader scales high-bit-depth pixels as predict does (Pillow clipped them)."""
    from visionlab.data.image_folder import ImageFileDataset

    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    paths = [tmp_path / "8-bit.png", tmp_path / "16-bit.tif", tmp_path / "float.tiff"]
    Image.fromarray(grey).save(paths[0])
    Image.fromarray(grey.astype(np.uint16) * 257).save(paths[1])
    Image.fromarray(grey.astype(np.float32) / 255).save(paths[2])
    images = [np.asarray(image) for image, _ in ImageFileDataset([(path, 0) for path in paths])]
    assert images[0].shape == (16, 16, 3) and (images[0][..., 0] == grey).all()
    assert all((image == images[0]).all() for image in images[1:])


def test_a_photo_stored_sideways_with_an_exif_orientation_is_read_upright(tmp_path):
    """Phones store a portrait photo as landscape pixels plus an EXIF tag; viewers turn it."""
    from visionlab.data.image_folder import ImageFileDataset

    stored = np.zeros((20, 40, 3), dtype=np.uint8)
    stored[:, :20] = 255  # as stored: 40 wide, the left half white
    exif = Image.new("RGB", (1, 1)).getexif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to view"
    Image.fromarray(stored).save(tmp_path / "photo.jpg", exif=exif.tobytes(), quality=95)
    ((image, _),) = ImageFileDataset([(tmp_path / "photo.jpg", 0)])
    pixels = np.asarray(image)
    assert pixels.shape == (40, 20, 3)  # upright: 20 wide, 40 high
    assert pixels[:15].mean() > 200 and pixels[25:].mean() < 50  # the white half now on top

