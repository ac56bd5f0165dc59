"""Training augmentation presets: each returns PIL-image transforms for a given input size.

They run before resizing and normalisation (see ``transforms.train_transform``);
validation and test data never pass through them.
"""

from __future__ import annotations

from torchvision.transforms import v2


def no_augment(image_size: int) -> list:
    """No augmentation."""
    return []


def flip_crop(image_size: int, scale_min: float = 0.6, hflip: float = 0.5) -> list:
    """Random resized crop (``scale_min``..1 of the area) and horizontal flip."""
    return [
        v2.RandomResizedCrop(image_size, scale=(scale_min, 1.0), antialias=True),
        v2.RandomHorizontalFlip(hflip),
    ]
