"""Training augmentation presets: each returns PIL-image transforms for a given input size.

A preset is a function ``(image_size, **params) -> list of transforms``; Hydra configs in
``conf/augment/`` bind the params with ``_partial_: true``. The transforms run before
resizing and normalisation (see ``transforms.train_transform``); validation and test data
never pass through them. Randomness comes from torch's generator, so ``seed_everything``
and DataLoader worker seeding make runs repeatable.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from visionlab.errors import UserError


def no_augment(image_size: int) -> list:
    """No augmentation: train images only get the eval resizing and normalisation."""
    return []


def flip_crop(image_size: int, scale_min: float = 0.6, hflip: float = 0.5) -> list:
    """Random resized crop (``scale_min``..1 of the area) and horizontal flip."""
    return [
        v2.RandomResizedCrop(image_size, scale=(scale_min, 1.0), antialias=True),
        *_hflip(hflip),
    ]


def keras(image_size: int, **keras_params) -> list:
    """Keras ``ImageDataGenerator`` augmentation with Keras' parameter names and meanings.

    So a Keras recipe carries over unchanged. Like ``flow_from_directory(target_size=...)``
    the image is first resized to the model's input size, then randomly transformed by
    :class:`KerasRandomTransform` (which documents every parameter and, like Keras, defaults
    to no transform; ``conf/augment/keras.yaml`` sets the course recipe's values).
    """
    return [v2.Resize((image_size, image_size), antialias=True), KerasRandomTransform(**keras_params)]


def randaugment(image_size: int, num_ops: int = 2, magnitude: int = 9, hflip: float = 0.5) -> list:
    """torchvision RandAugment (``num_ops`` random ops at ``magnitude`` 0..30), then a flip.

    ``hflip`` is the horizontal-flip probability (0 disables it).
    """
    if not 0 <= magnitude <= 30:
        raise UserError(f"augment.magnitude={magnitude} must be between 0 and 30 "
                        "(RandAugment's magnitude bins)")
    return [v2.RandAugment(num_ops=num_ops, magnitude=magnitude), *_hflip(hflip)]


def trivialaugment(image_size: int, hflip: float = 0.5) -> list:
    """torchvision TrivialAugmentWide (one random op at a random strength), then a flip.

    Parameter-free apart from ``hflip``, the horizontal-flip probability (0 disables it).
    """
    return [v2.TrivialAugmentWide(), *_hflip(hflip)]


def _hflip(probability: float) -> list:
    """A horizontal flip with ``probability``, or nothing when it is 0."""
    if not 0.0 <= probability <= 1.0:
        raise UserError(f"augment.hflip={probability} must be a probability between 0 and 1")
    return [v2.RandomHorizontalFlip(probability)] if probability > 0 else []


# Keras fill mode -> grid_sample's padding ("wrap" wraps the coordinates first; "constant"
# samples zeros around the image shifted by -cval, then shifts back).
_PADDING = {"nearest": "border", "constant": "zeros", "reflect": "reflection", "wrap": "border"}
FILL_MODES = tuple(_PADDING)


class KerasRandomTransform:
    """One random Keras ``ImageDataGenerator`` transform of a PIL image (PIL in, PIL out).

    Parameters keep Keras' names and meanings (``keras.preprocessing.image``):

    - ``rotation_range``: degrees; the angle is uniform in ``[-r, r]``.
    - ``width_shift_range`` / ``height_shift_range``: a value below 1 is a fraction of the
      width / height, 1 or more is pixels; the shift is uniform in ``[-s, s]``.
    - ``shear_range``: shear *angle in degrees*, uniform in ``[-s, s]`` (so Keras' common
      ``shear_range=0.2`` is a 0.2 degree shear, exactly as in Keras).
    - ``zoom_range``: ``z`` means ``[1 - z, 1 + z]``, or give ``[lo, hi]``. Two factors are
      drawn independently, one for rows and one for columns (Keras zooms anisotropically).
      As in Keras the factor scales the *sampling grid*: a factor below 1 zooms in (content
      looks larger), above 1 zooms out (content smaller, the border filled per ``fill_mode``).
    - ``horizontal_flip`` / ``vertical_flip``: ``True`` flips half the images (Keras);
      a number in ``[0, 1]`` is the flip probability instead.
    - ``fill_mode``: how points outside the image are filled, as Keras documents it for
      input ``abcd``: ``nearest`` ``aaaa|abcd|dddd``, ``reflect`` ``dcba|abcd|dcba``,
      ``wrap`` ``abcd|abcd|abcd``, ``constant`` ``kkkk|abcd|kkkk`` with ``k = cval``.
    - ``cval``: the constant fill in pixel units (0-255), as Keras uses on raw images.

    The matrix is built like Keras' ``apply_affine_transform`` (rotation, shift, shear and
    zoom composed in that order, about the image centre, mapping output to input pixels)
    and sampled bilinearly, like Keras' default ``interpolation_order=1``; the result equals
    ``scipy.ndimage.affine_transform`` (Keras' backend) with modes nearest, reflect,
    grid-wrap and grid-constant, i.e. the behaviour Keras documents. Flips come after.
    """

    def __init__(
        self,
        rotation_range: float = 0.0,
        width_shift_range: float = 0.0,
        height_shift_range: float = 0.0,
        shear_range: float = 0.0,
        zoom_range: float | tuple[float, float] = 0.0,
        horizontal_flip: bool | float = False,
        vertical_flip: bool | float = False,
        fill_mode: str = "nearest",
        cval: float = 0.0,
    ) -> None:
        if fill_mode not in FILL_MODES:
            raise UserError(f"augment.fill_mode={fill_mode!r} is not a Keras fill mode; "
                            f"use one of: {', '.join(FILL_MODES)}")
        for name, value in (("rotation_range", rotation_range), ("shear_range", shear_range),
                            ("width_shift_range", width_shift_range),
                            ("height_shift_range", height_shift_range)):
            if value < 0:
                raise UserError(f"augment.{name}={value} must be >= 0 (it is a +/- range)")
        self.rotation_range = float(rotation_range)
        self.width_shift_range = float(width_shift_range)
        self.height_shift_range = float(height_shift_range)
        self.shear_range = float(shear_range)
        self.zoom_range = _zoom_bounds(zoom_range)
        self.horizontal_flip = _flip_probability("horizontal_flip", horizontal_flip)
        self.vertical_flip = _flip_probability("vertical_flip", vertical_flip)
        self.fill_mode = fill_mode
        self.cval = float(cval)

    def __call__(self, image: Image.Image) -> Image.Image:
        """Return ``image`` randomly rotated, shifted, sheared, zoomed and flipped."""
        if image.mode not in ("L", "RGB"):
            image = image.convert("RGB")
        h, w = image.height, image.width
        matrix = _keras_matrix(
            theta=_uniform(-self.rotation_range, self.rotation_range),
            tx=_shift(self.height_shift_range, h),
            ty=_shift(self.width_shift_range, w),
            shear=_uniform(-self.shear_range, self.shear_range),
            zx=_uniform(*self.zoom_range),
            zy=_uniform(*self.zoom_range),
            h=h, w=w,
        )
        flip_dims = [dim for dim, p in ((-1, self.horizontal_flip), (-2, self.vertical_flip))
                     if p > 0 and torch.rand(()).item() < p]
        if matrix is None and not flip_dims:
            return image
        pixels = TF.pil_to_tensor(image)
        if matrix is not None:
            pixels = _warp(pixels.double(), matrix, self.fill_mode, self.cval)
            pixels = pixels.round().clamp(0, 255).to(torch.uint8)
        if flip_dims:
            pixels = pixels.flip(flip_dims)
        return TF.to_pil_image(pixels, mode=image.mode)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


def _uniform(low: float, high: float) -> float:
    """A uniform sample from torch's generator (exactly ``low`` when the range is empty)."""
    return low if low == high else low + (high - low) * torch.rand(()).item()


def _shift(shift_range: float, size: int) -> float:
    """A Keras shift in pixels: a range below 1 is a fraction of ``size``, else pixels."""
    shift = _uniform(-shift_range, shift_range)
    return shift * size if shift_range < 1 else shift


def _zoom_bounds(zoom_range) -> tuple[float, float]:
    """Keras' zoom_range: ``z`` -> ``(1 - z, 1 + z)``; a ``[lo, hi]`` pair is kept."""
    if isinstance(zoom_range, (int, float)):
        bounds = (1.0 - zoom_range, 1.0 + zoom_range)
    else:
        bounds = tuple(float(z) for z in zoom_range)
    if len(bounds) != 2 or not 0 < bounds[0] <= bounds[1]:
        raise UserError(f"augment.zoom_range={zoom_range} must be a number in [0, 1) or a "
                        "[lo, hi] pair with 0 < lo <= hi")
    return bounds


def _flip_probability(name: str, value: bool | float) -> float:
    """Keras' boolean flip means probability 0.5; a number is taken as the probability."""
    if isinstance(value, bool):
        return 0.5 if value else 0.0
    if not 0.0 <= value <= 1.0:
        raise UserError(f"augment.{name}={value} must be true/false or a probability in [0, 1]")
    return float(value)


def _keras_matrix(theta: float, tx: float, ty: float, shear: float, zx: float, zy: float,
                  h: int, w: int) -> torch.Tensor | None:
    """Keras' output-to-input pixel map in (row, col) coordinates, or None for identity.

    ``theta`` and ``shear`` are degrees, ``tx`` / ``ty`` row / column shifts in pixels and
    ``zx`` / ``zy`` row / column zoom factors; the map is centred on the image centre.
    """
    parts = []
    if theta:
        t = math.radians(theta)
        parts.append([[math.cos(t), -math.sin(t), 0], [math.sin(t), math.cos(t), 0], [0, 0, 1]])
    if tx or ty:
        parts.append([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
    if shear:
        s = math.radians(shear)
        parts.append([[1, -math.sin(s), 0], [0, math.cos(s), 0], [0, 0, 1]])
    if zx != 1 or zy != 1:
        parts.append([[zx, 0, 0], [0, zy, 0], [0, 0, 1]])
    if not parts:
        return None
    matrix = torch.eye(3, dtype=torch.float64)
    for part in parts:
        matrix = matrix @ torch.tensor(part, dtype=torch.float64)
    o_r, o_c = h / 2 - 0.5, w / 2 - 0.5
    to_centre = torch.tensor([[1, 0, o_r], [0, 1, o_c], [0, 0, 1]], dtype=torch.float64)
    from_centre = torch.tensor([[1, 0, -o_r], [0, 1, -o_c], [0, 0, 1]], dtype=torch.float64)
    return to_centre @ matrix @ from_centre


def _warp(pixels: torch.Tensor, matrix: torch.Tensor, fill_mode: str, cval: float) -> torch.Tensor:
    """Sample ``pixels`` (C, H, W) at ``matrix`` @ (row, col, 1) with Keras' fill mode."""
    _, h, w = pixels.shape
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float64),
                                torch.arange(w, dtype=torch.float64), indexing="ij")
    ones = torch.ones(h * w, dtype=torch.float64)
    src = matrix @ torch.stack([rows.flatten(), cols.flatten(), ones])
    src_r, src_c = src[0], src[1]
    offset = cval if fill_mode == "constant" else 0.0
    source = (pixels - offset)[None]
    if fill_mode == "wrap":
        # Periodic image: wrap coordinates into one period, and pad one pixel circularly so
        # bilinear sampling across the seam mixes the opposite edges, as Keras does.
        src_r = torch.remainder(src_r + 0.5, h) + 0.5
        src_c = torch.remainder(src_c + 0.5, w) + 0.5
        source = F.pad(source, (1, 1, 1, 1), mode="circular")
    sh, sw = source.shape[-2:]
    # grid_sample's normalised coordinates with align_corners=False: -1 and 1 are pixel edges.
    grid = torch.stack([(2 * src_c + 1) / sw - 1, (2 * src_r + 1) / sh - 1], dim=-1)
    grid = grid.view(1, h, w, 2)
    out = F.grid_sample(source, grid, mode="bilinear", padding_mode=_PADDING[fill_mode],
                        align_corners=False)
    return out[0] + offset
