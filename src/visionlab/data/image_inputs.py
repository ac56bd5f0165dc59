"""Images as a user hands them to a trained model in Python (file paths, PIL images, tensors), made
into the batches the model reads, with the same preprocessing ``visionlab predict`` applies to files.

A tensor is an image in torchvision's convention: ``(C, H, W)`` or a batch ``(N, C, H, W)``, ``uint8``
in [0, 255] or floating point in [0, 1]. Paths and PIL images are read as 8-bit RGB (16-bit ones
scaled, :mod:`visionlab.data.pixels`); the model's preprocessing then fixes the channels (gray models
average them), resizes and normalises.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError

from visionlab.data.pixels import as_rgb
from visionlab.data.transforms import eval_transform
from visionlab.data_config import DataConfig
from visionlab.errors import UserError

ImageInput = str | Path | Image.Image | torch.Tensor
Images = ImageInput | Sequence[ImageInput]


def image_list(images: Images) -> list[ImageInput] | torch.Tensor:
    """``images`` as a list of single images, or as one ``(N, C, H, W)`` batch tensor (kept whole:
    it is preprocessed in slices, never image by image)."""
    if isinstance(images, torch.Tensor):
        if images.dim() == 4:
            return images
        if images.dim() == 3:
            return [images]
        raise UserError(f"an image tensor is (C, H, W) or a batch (N, C, H, W), not {tuple(images.shape)}")
    if isinstance(images, (str, Path, Image.Image)):
        return [images]
    return list(images)


def read_rgb(path: str | Path) -> Image.Image:
    """The image file at ``path`` as RGB; a UserError naming a file PIL cannot read."""
    try:
        with Image.open(path) as image:
            return as_rgb(image)
    except FileNotFoundError:
        raise UserError(f"{path} does not exist: give image files, PIL images or tensors") from None
    except (OSError, UnidentifiedImageError) as err:
        raise UserError(f"cannot read image {path}: {err}") from None


def single_image(image: ImageInput) -> Image.Image | torch.Tensor:
    """One image as the preprocessing takes it: a file read as an RGB PIL image, a PIL image as RGB,
    a ``(C, H, W)`` tensor as it is (``uint8`` is scaled by the preprocessing, as a file's pixels are)."""
    if isinstance(image, (str, Path)):
        return read_rgb(image)
    if isinstance(image, Image.Image):
        return as_rgb(image)
    if isinstance(image, torch.Tensor) and image.dim() == 3:
        return image
    shape = f" of shape {tuple(image.shape)}" if isinstance(image, torch.Tensor) else ""
    raise UserError(f"an image is a file path, a PIL image or a (C, H, W) tensor, not {type(image).__name__}"
                    f"{shape}")


def preprocessed_batches(images: Images, config: DataConfig, batch_size: int) -> Iterator[torch.Tensor]:
    """``(n, C, H, W)`` batches of at most ``batch_size`` images, resized and normalised as the model
    expects (:func:`~visionlab.data.transforms.eval_transform`, the test set's pipeline), in the
    order given."""
    if batch_size < 1:
        raise UserError(f"batch_size={batch_size} must be >= 1")
    items, transform = image_list(images), eval_transform(config)
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        if isinstance(chunk, torch.Tensor):  # a batch tensor: one transform over the slice
            yield transform(chunk)
        else:
            yield torch.stack([transform(single_image(image)) for image in chunk])
