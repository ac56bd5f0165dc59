"""Augmentation presets: the Keras preset's parameters mean what Keras means, all presets run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from visionlab.data.augment import KerasRandomTransform, _keras_matrix, _warp, keras
from visionlab.data.transforms import eval_transform, train_transform
from visionlab.data_config import DataConfig
from visionlab.errors import UserError

AUGMENT_DIR = Path(__file__).resolve().parents[1] / "conf" / "augment"
AUGMENT_CONFIGS = sorted(AUGMENT_DIR.glob("*.yaml"))
NO_AFFINE = dict(rotation_range=0, width_shift_range=0, height_shift_range=0, shear_range=0,
                 zoom_range=0)


def noise_image(size: int = 32, high: int = 200, mode: str = "RGB", seed: int = 0) -> Image.Image:
    """A random image with pixel values in [0, high]."""
    g = torch.Generator().manual_seed(seed)
    channels = 3 if mode == "RGB" else 1
    pixels = torch.randint(0, high + 1, (channels, size, size), generator=g, dtype=torch.uint8)
    return TF.to_pil_image(pixels, mode=mode)


def square_image(size: int = 32, side: int = 8) -> Image.Image:
    """A white centred square on black."""
    pixels = torch.zeros(1, size, size, dtype=torch.uint8)
    lo = (size - side) // 2
    pixels[:, lo:lo + side, lo:lo + side] = 255
    return TF.to_pil_image(pixels, mode="L")


def tensor(image: Image.Image) -> torch.Tensor:
    return TF.pil_to_tensor(image)


def course_keras():
    """The ``augment=keras`` preset as Hydra builds it from ``conf/augment/keras.yaml``."""
    return instantiate(OmegaConf.load(AUGMENT_DIR / "keras.yaml"))


def test_keras_preset_changes_the_image_and_eval_does_not():
    config = DataConfig(3, 32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    image = noise_image()
    train, evaluate = train_transform(config, course_keras()), eval_transform(config)
    reference = evaluate(image)
    assert torch.equal(reference, evaluate(image))  # eval is deterministic
    torch.manual_seed(0)
    assert any(not torch.allclose(train(image), reference) for _ in range(3))
    torch.manual_seed(1)
    first = train(image)
    torch.manual_seed(1)
    assert torch.equal(first, train(image))  # seeded by torch's generator


def test_keras_preset_config_is_the_course_recipe_and_the_class_defaults_are_keras():
    transform = course_keras()(32)[-1]
    assert (transform.rotation_range, transform.width_shift_range, transform.height_shift_range,
            transform.shear_range, transform.zoom_range) == (40, 0.2, 0.2, 0.2, (0.8, 1.2))
    flips = (transform.horizontal_flip, transform.vertical_flip)
    assert flips == (0.5, 0.0) and transform.fill_mode == "nearest"
    image = noise_image()
    plain = keras(32)[-1]  # Keras' own ImageDataGenerator() defaults: no transform at all
    assert torch.equal(tensor(plain(image)), tensor(image))


@pytest.mark.parametrize(("param", "flip"), [("horizontal_flip", TF.horizontal_flip),
                                             ("vertical_flip", TF.vertical_flip)])
def test_flip_probability_one_only_flips(param, flip):
    image = noise_image()
    out = KerasRandomTransform(**NO_AFFINE, **{param: 1.0})(image)
    assert torch.equal(tensor(out), flip(tensor(image)))


def test_keras_boolean_flip_flips_about_half():
    image = noise_image()
    transform = KerasRandomTransform(**NO_AFFINE, horizontal_flip=True)
    torch.manual_seed(0)
    outs = [tensor(transform(image)) for _ in range(40)]
    flipped = sum(torch.equal(o, TF.horizontal_flip(tensor(image))) for o in outs)
    unchanged = sum(torch.equal(o, tensor(image)) for o in outs)
    assert flipped + unchanged == 40 and 8 <= flipped <= 32


def test_no_parameters_is_identity():
    image = noise_image(mode="L")
    assert KerasRandomTransform(**NO_AFFINE)(image) is image


@pytest.mark.parametrize("fill_mode", ["nearest", "reflect", "wrap"])
def test_constant_fills_corners_with_cval_and_other_modes_use_image_content(fill_mode):
    image = noise_image(high=200)
    # Any rotation of a 1.5x zoomed-out image samples the corners far outside the input.
    big = dict(rotation_range=180, zoom_range=[1.5, 1.5])
    torch.manual_seed(0)
    constant = tensor(KerasRandomTransform(**big, fill_mode="constant", cval=255)(image))
    for rows in (slice(0, 3), slice(-3, None)):
        for cols in (slice(0, 3), slice(-3, None)):
            assert (constant[:, rows, cols] == 255).all()
    torch.manual_seed(0)
    other = tensor(KerasRandomTransform(**big, fill_mode=fill_mode, cval=255)(image))
    assert other.max() <= 200  # filled from the image, never a constant border


def test_fill_modes_extend_the_image_as_keras_documents():
    # Keras' docs for input abcd: nearest aaaa|abcd|dddd, reflect dcba|abcd|dcba,
    # wrap abcd|abcd|abcd, constant kkkk|abcd|kkkk. A shift by 3 columns exposes 3 columns.
    row = torch.arange(8, dtype=torch.float64).view(1, 1, 8).expand(1, 2, 8)
    shift_left = _keras_matrix(0, 0, 3, 0, 1, 1, 2, 8)  # output column c samples input c + 3
    expected = {"nearest": [3, 4, 5, 6, 7, 7, 7, 7], "reflect": [3, 4, 5, 6, 7, 7, 6, 5],
                "wrap": [3, 4, 5, 6, 7, 0, 1, 2], "constant": [3, 4, 5, 6, 7, 9, 9, 9]}
    for mode, values in expected.items():
        out = _warp(row, shift_left, mode, cval=9.0)
        assert torch.allclose(out[0, 0], torch.tensor(values, dtype=torch.float64)), mode


SCIPY_MODES = [("nearest", "nearest"), ("reflect", "reflect"), ("wrap", "grid-wrap"),
               ("constant", "grid-constant")]


@pytest.mark.parametrize(("fill_mode", "scipy_mode"), SCIPY_MODES)
def test_warp_matches_scipy_affine_transform_used_by_keras(fill_mode, scipy_mode):
    ndimage = pytest.importorskip("scipy.ndimage")
    image = torch.rand(1, 12, 17, dtype=torch.float64) * 255
    matrix = _keras_matrix(30, 2.5, -3.5, 10, 0.8, 1.3, 12, 17)
    expected = ndimage.affine_transform(image[0].numpy(), matrix[:2, :2].numpy(),
                                        matrix[:2, 2].numpy(), order=1, mode=scipy_mode, cval=77.0)
    assert torch.allclose(_warp(image, matrix, fill_mode, 77.0)[0], torch.from_numpy(expected))


def test_zoom_below_one_zooms_in_above_one_zooms_out():
    bright = lambda img: int((tensor(img) > 127).sum())  # noqa: E731
    image = square_image(side=8)
    zoom_in = KerasRandomTransform(zoom_range=[0.5, 0.5], fill_mode="constant")(image)
    zoom_out = KerasRandomTransform(zoom_range=[2.0, 2.0], fill_mode="constant")(image)
    assert bright(image) == 64 and bright(zoom_in) == pytest.approx(256, abs=40)
    assert bright(zoom_out) == pytest.approx(16, abs=8)
    assert KerasRandomTransform(zoom_range=0.3).zoom_range == (0.7, 1.3)


@pytest.mark.parametrize(("param", "axis"), [("width_shift_range", -1), ("height_shift_range", -2)])
def test_shift_is_a_fraction_of_the_size_along_its_axis(param, axis):
    pixels = torch.zeros(1, 32, 32, dtype=torch.uint8)
    pixels.select(axis, 16).fill_(255)  # a line across the other axis
    image = TF.to_pil_image(pixels, mode="L")
    transform = KerasRandomTransform(**{**NO_AFFINE, param: 0.25}, fill_mode="constant")
    torch.manual_seed(0)
    offsets = []
    for _ in range(10):
        out = tensor(transform(image)).double()
        profile = out.sum(dim=-2 if axis == -1 else -1)[0]  # brightness per column / row
        assert profile.sum() > 0 and out.sum(dim=axis).std() < 1  # still a straight line
        offsets.append(int(profile.argmax()) - 16)
    assert all(abs(o) <= 8 for o in offsets) and len(set(offsets)) > 2


def test_rotation_and_shear_are_degrees():
    for theta in (30.0, -50.0):
        rotation = _keras_matrix(theta, 0, 0, 0, 1, 1, 1, 1)
        assert rotation[0, 1].item() == pytest.approx(-math.sin(math.radians(theta)))
    shear = _keras_matrix(0, 0, 0, 30, 1, 1, 1, 1)
    assert shear[0, 1].item() == pytest.approx(-0.5)
    assert shear[1, 1].item() == pytest.approx(math.cos(math.radians(30)))
    image = noise_image()
    torch.manual_seed(0)
    tiny = tensor(KerasRandomTransform(shear_range=0.2)(image)).double()
    assert (tiny - tensor(image).double()).abs().mean() < 5  # 0.2 degrees barely moves pixels


def test_bad_keras_parameters_are_user_errors():
    with pytest.raises(UserError, match="fill_mode='mirror'.*nearest, constant, reflect, wrap"):
        KerasRandomTransform(fill_mode="mirror")
    with pytest.raises(UserError, match="zoom_range"):
        KerasRandomTransform(zoom_range=1.5)
    with pytest.raises(UserError, match="rotation_range"):
        KerasRandomTransform(rotation_range=-10)
    with pytest.raises(UserError, match="horizontal_flip"):
        KerasRandomTransform(horizontal_flip=2.0)


@pytest.mark.parametrize("path", AUGMENT_CONFIGS, ids=[p.stem for p in AUGMENT_CONFIGS])
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_every_preset_instantiates_and_runs(path, mode):
    factory = instantiate(OmegaConf.load(path))
    config = DataConfig(3, 24, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    torch.manual_seed(0)
    out = train_transform(config, factory)(noise_image(size=40, mode=mode))
    assert out.shape == (3, 24, 24) and out.dtype == torch.float32 and torch.isfinite(out).all()
