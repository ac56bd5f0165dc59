"""Transforms, the shapes generator and torchvision datasets (offline, on tiny fake files)."""

from __future__ import annotations

import struct
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from PIL import Image
from tiny import TensorDataModule, invert

from visionlab.data.shapes import generate, spec_for
from visionlab.data.torchvision_datasets import SOURCES, TorchvisionDataModule, TransformedSubset
from visionlab.data.transforms import MatchChannels, eval_transform, train_transform
from visionlab.data_config import DataConfig
from visionlab.errors import UserError

RGB_32 = DataConfig(3, 32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


# --- transforms ---------------------------------------------------------------------------


def test_eval_transform_is_deterministic_and_never_augmented():
    image = Image.effect_noise((40, 30), 60).convert("RGB")
    evaluate = eval_transform(RGB_32)
    assert torch.equal(evaluate(image), evaluate(image))
    torch.manual_seed(0)
    assert torch.equal(train_transform(RGB_32, None)(image), evaluate(image))
    assert not torch.equal(train_transform(RGB_32, invert)(image), evaluate(image))


@pytest.mark.parametrize(("mode", "in_chans"), [("L", 3), ("RGB", 1), ("L", 1), ("RGB", 3)])
def test_channels_match_the_backbone(mode, in_chans):
    config = DataConfig(in_chans, 16, (0.5,) * in_chans, (0.5,) * in_chans)
    image = Image.effect_noise((20, 20), 60).convert(mode)
    out = eval_transform(config)(image)
    assert out.shape == (in_chans, 16, 16)
    if mode == "L" and in_chans == 3:
        assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])


def test_match_channels_averages_rgb_to_gray():
    rgb = torch.stack([torch.zeros(2, 2), torch.ones(2, 2), 2 * torch.ones(2, 2)])
    assert torch.equal(MatchChannels(1)(rgb), torch.ones(1, 2, 2))


# --- shapes -------------------------------------------------------------------------------


def test_shapes_generation_is_deterministic(tmp_path):
    spec = spec_for("shapes", classes=["circle", "star"], train_per_class=3, val_per_class=1,
                    test_per_class=1, image_size=24)
    first, second = generate(spec, tmp_path / "a", False), generate(spec, tmp_path / "b", False)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert len(files) == 2 * 5 + 1  # images + spec.json
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)


def test_shapes_are_written_once_and_reused(tmp_path):
    spec = spec_for("shapes_target", train_per_class=2, val_per_class=1, test_per_class=1)
    root = generate(spec, tmp_path / "t", show_progress=False)
    files = sorted(p for p in root.rglob("*.png"))
    assert len(files) == 6 * 4
    stamps = {p: p.stat().st_mtime_ns for p in files}
    assert generate(spec, root, show_progress=False) == root
    assert {p: p.stat().st_mtime_ns for p in files} == stamps  # nothing rewritten
    other = spec_for("shapes_target", train_per_class=3, val_per_class=1, test_per_class=1)
    with pytest.raises(UserError, match="does not hold this shapes dataset"):
        generate(other, root, show_progress=False)


def test_plain_shapes_have_a_flat_background_and_textured_ones_do_not(tmp_path):
    import numpy as np
    from PIL import Image

    def corners_flat(path: Path) -> bool:
        pixels = np.asarray(Image.open(path))
        return len({tuple(pixels[y, x]) for y in (0, -1) for x in (0, -1)}) == 1

    for variant, flat in (("shapes_plain", True), ("shapes", False)):
        spec = spec_for(variant, train_per_class=4, val_per_class=1, test_per_class=1)
        root = generate(spec, tmp_path / variant, show_progress=False)
        images = sorted(root.rglob("*.png"))
        assert all(corners_flat(p) for p in images) if flat else not any(corners_flat(p) for p in images)
    assert '"background": "plain"' in (tmp_path / "shapes_plain" / "spec.json").read_text()
    assert "background" not in (tmp_path / "shapes" / "spec.json").read_text()  # older trees still match


def test_mono_shapes_are_light_grey_on_dark_grey_and_centred(tmp_path):
    import numpy as np
    from PIL import Image

    spec = spec_for("shapes_mono", train_per_class=3, val_per_class=1, test_per_class=1, image_size=32)
    root = generate(spec, tmp_path / "mono", show_progress=False)
    for path in sorted(root.rglob("*.png")):
        pixels = np.asarray(Image.open(path)).astype(int)
        assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all(), path
        grey = pixels[..., 0]
        assert grey[0, 0] <= 60 and grey.max() >= 180  # dark ground, light shape
        ys, xs = np.nonzero(grey >= 120)
        assert abs(ys.mean() - 15.5) < 5 and abs(xs.mean() - 15.5) < 5, path  # near the middle
    assert '"centred": true' in (root / "spec.json").read_text()


# --- torchvision datasets: offline behaviour ----------------------------------------------


def make_module(name: str, root: Path, **kwargs) -> TorchvisionDataModule:
    return TorchvisionDataModule(name=name, root=str(root), data_config=RGB_32, batch_size=4,
                                 **kwargs)


@pytest.mark.parametrize("name", list(SOURCES))
def test_missing_dataset_without_download_is_one_user_error(tmp_path, name):
    module = make_module(name, tmp_path / name, download=False)
    with pytest.raises(UserError) as info:
        module.setup("fit")
    message = str(info.value)
    assert name in message and str(tmp_path / name) in message and "data.download=true" in message
    assert "\n" not in message


@pytest.mark.parametrize("name", list(SOURCES))
def test_failed_download_is_one_user_error(tmp_path, monkeypatch, name):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    module = make_module(name, tmp_path / name, download=True)
    with pytest.raises(UserError) as info:
        module.prepare_data()
    message = str(info.value)
    assert f"could not download dataset {name} into {tmp_path / name}" in message
    assert "internet" in message and "\n" not in message


def test_bad_dataset_options_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="data.name='imagenet'.*mnist"):
        make_module("imagenet", tmp_path)
    with pytest.raises(UserError, match="data.binary=true is not supported by mnist.*oxford_pets"):
        make_module("mnist", tmp_path, binary=True)


# --- torchvision datasets: the real loading code on tiny fake files ------------------------


def write_idx(path: Path, data: torch.Tensor) -> None:
    """Write ``data`` (uint8) in the IDX format MNIST is distributed in."""
    header = struct.pack(f">{1 + data.dim()}I", 0x0800 + data.dim(), *data.shape)
    path.write_bytes(header + data.numpy().tobytes())


def write_fake_mnist(raw: Path, per_class: int, test_per_class: int) -> None:
    """A 10-class MNIST in torchvision's raw layout: class k's digits are all value 20k."""
    raw.mkdir(parents=True)
    for prefix, n in (("train", per_class), ("t10k", test_per_class)):
        labels = torch.arange(10, dtype=torch.uint8).repeat_interleave(n)
        images = (labels * 20).view(-1, 1, 1).expand(-1, 28, 28).contiguous()
        images[:, :, :14] += torch.arange(len(labels), dtype=torch.uint8).view(-1, 1, 1) % 7
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)


@pytest.mark.parametrize(("name", "folder"),
                         [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_fake_mnist_end_to_end(tmp_path, name, folder):
    write_fake_mnist(tmp_path / folder / "raw", per_class=5, test_per_class=2)
    module = make_module(name, tmp_path, download=False, val_fraction=0.2, split_seed=3,
                         augment=invert)
    module.setup("fit")
    assert module.num_classes == 10 and len(module.class_names) == 10
    assert (len(module.train_set), len(module.val_set), len(module.test_set)) == (40, 10, 20)
    # Stratified: one val image per class; train and val views never overlap.
    val_labels = module.val_set.dataset.targets[module.val_set.indices].tolist()
    assert sorted(val_labels) == list(range(10))
    assert not set(module.train_set.indices) & set(module.val_set.indices)
    # Grayscale expands to the backbone's 3 channels; only the train view is augmented.
    images, labels = next(iter(module.train_dataloader()))
    assert images.shape == (4, 3, 32, 32) and labels.dtype == torch.int64
    index = module.val_set.indices[0]
    pil, _ = module.val_set.dataset[index]
    plain = eval_transform(RGB_32)(pil)
    assert torch.equal(module.val_set[0][0], plain)
    train_view = TransformedSubset(module.train_set.dataset, [index], module.train_set.transform)
    assert torch.allclose(train_view[0][0], -plain, atol=1e-6)  # inverted in [-1, 1]
    # Same seed, same split.
    again = make_module(name, tmp_path, download=False, val_fraction=0.2, split_seed=3)
    again.setup("fit")
    assert again.val_set.indices == module.val_set.indices


def write_fake_pets(root: Path) -> None:
    """Oxford-IIIT Pets in torchvision's layout: 2 cat breeds, 1 dog breed, tiny images."""
    base = root / "oxford-iiit-pet"
    images, annotations = base / "images", base / "annotations"
    images.mkdir(parents=True)
    annotations.mkdir()
    breeds = [("Abyssinian", 1, 1), ("Bengal", 2, 1), ("beagle", 3, 2)]  # name, class id, species
    for split, ids in (("trainval", range(1, 6)), ("test", range(6, 8))):
        lines = []
        for breed, class_id, species in breeds:
            for i in ids:
                image = Image.new("RGB", (12, 10), (40 * class_id, 0, 0))
                image.save(images / f"{breed}_{i}.jpg", "JPEG")
                lines.append(f"{breed}_{i} {class_id} {species} {class_id}")
        (annotations / f"{split}.txt").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(("binary", "classes"), [(False, ["Abyssinian", "Bengal", "Beagle"]),
                                                 (True, ["Cat", "Dog"])])
def test_fake_oxford_pets(tmp_path, binary, classes):
    write_fake_pets(tmp_path)
    module = make_module("oxford_pets", tmp_path, download=False, val_fraction=0.2, binary=binary,
                         augment=invert)
    module.setup("fit")
    assert module.class_names == classes
    assert (len(module.train_set), len(module.val_set), len(module.test_set)) == (12, 3, 6)
    val_labels = sorted(module.val_set[i][1] for i in range(len(module.val_set)))
    assert val_labels == ([0, 1, 2] if not binary else [0, 0, 1])
    image, label = module.test_set[5]
    assert image.shape == (3, 32, 32) and label == len(classes) - 1
    pil, _ = module.val_set.dataset[module.val_set.indices[0]]
    assert torch.equal(module.val_set[0][0], eval_transform(RGB_32)(pil))  # val is never inverted
    train_pil, _ = module.train_set.dataset[module.train_set.indices[0]]
    assert torch.allclose(module.train_set[0][0], -eval_transform(RGB_32)(train_pil), atol=1e-6)


@pytest.mark.parametrize("cpus, workers", [(1, 0), (2, 1), (4, 3), (32, 8)])
def test_auto_num_workers_leaves_one_cpu_to_training(monkeypatch, cpus, workers):
    from visionlab.data import loading

    monkeypatch.setattr(loading.os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    assert loading.resolve_num_workers("auto") == workers
    assert loading.resolve_num_workers(2) == 2


@pytest.mark.parametrize("key, value", [("num_workers", -1), ("num_workers", "many"),
                                        ("pin_memory", "yes"), ("cache_features", "always")])
def test_bad_loader_options_are_one_line_errors(key, value):
    with pytest.raises(UserError, match=rf"data.{key}="):
        TensorDataModule(**{key: value})


def test_epoch_shuffle_depends_only_on_seed_and_epoch():
    from visionlab.data.loading import EpochShuffleSampler

    def order(seed, epoch, then=None):
        generator = torch.Generator()
        sampler = EpochShuffleSampler(50, seed, epoch, generator)
        if then is not None:  # an earlier epoch first, as in an uninterrupted run
            list(sampler)
            sampler.set_epoch(then)
        return list(sampler), generator.initial_seed()

    assert order(1, 3) == order(1, 2, then=3)
    assert order(1, 3)[0] != order(1, 4)[0] and order(1, 3)[0] != order(2, 3)[0]
    assert sorted(order(1, 3)[0]) == list(range(50))


def test_in_memory_batches_are_the_loaders_batches_in_the_same_order_every_epoch(data_dir):
    from visionlab.data.in_memory import InMemoryBatches, decoded
    from visionlab.data.shapes_datamodule import ShapesDataModule

    data = ShapesDataModule(data_dir=str(data_dir / "shapes"), variant="shapes_mono", train_per_class=3,
                            val_per_class=1, test_per_class=1, data_config=DataConfig(1, 32, (0.5,), (0.5,)),
                            batch_size=5, seed=7)
    data.prepare_data()
    data.setup("fit")
    loader = data.train_dataloader()  # in_memory=false: the DataLoader
    memory = InMemoryBatches(*decoded(data.train_set), batch_size=5, seed=7, epoch=0)
    assert len(memory) == len(loader) == 5  # 24 images: 4 full batches and one of 4
    for epoch in (0, 1, 4):  # Lightning sets the epoch on both through their samplers
        loader.sampler.set_epoch(epoch)
        memory.sampler.set_epoch(epoch)
        pairs = list(zip(loader, memory, strict=True))
        for (images, labels), (held, held_labels) in pairs:
            assert torch.equal(images, held) and torch.equal(labels, held_labels)
    assert not torch.equal(pairs[0][1][0], next(iter(InMemoryBatches(*decoded(data.train_set), 5, 7, 0)))[0])


def test_in_memory_is_chosen_for_small_unaugmented_sets_on_one_process_and_refused_otherwise():
    from visionlab.data.in_memory import in_memory_choice

    small = [(torch.zeros(1, 32, 32), 0)] * 100
    assert in_memory_choice("auto", small, augmented=False, world_size=1) == (True,
                                                                              "100 images, 0.4 MB decoded")
    assert in_memory_choice("auto", small, augmented=True, world_size=1) == (False, "augmented every epoch")
    assert in_memory_choice("auto", small, augmented=False, world_size=2) == (False, "several processes")
    huge = [(torch.zeros(3, 512, 512), 0)] * 1000
    assert in_memory_choice("auto", huge, augmented=False, world_size=1)[0] is False
    assert in_memory_choice(False, small, augmented=False, world_size=1) == (False, "asked")
    with pytest.raises(UserError, match="in_memory=true holds one decoded copy .* augments it every epoch"):
        in_memory_choice(True, small, augmented=True, world_size=1)
    with pytest.raises(UserError, match="data.in_memory='yes' must be true, false or auto"):
        in_memory_choice("yes", small, augmented=False, world_size=1)
