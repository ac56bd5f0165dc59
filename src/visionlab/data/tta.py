"""Test-time augmentation: a classifier's softmax averaged over views of each image.

Views act on the preprocessed batch ``(N, C, H, W)``: ``flip`` is the image and its mirror;
``flip_crop`` adds a centre crop of 7/8 of the side, resized back, and its mirror (the crops
timm and fastai average over). ``none`` is the image alone: the plain score. Torch is imported
where it is used, so the command line reads the view names without loading it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from visionlab.errors import UserError

if TYPE_CHECKING:
    import torch

View = Callable[["torch.Tensor"], "torch.Tensor"]


def identity(x: torch.Tensor) -> torch.Tensor:
    """The image as it is."""
    return x


def mirror(x: torch.Tensor) -> torch.Tensor:
    """The image flipped left to right."""
    return x.flip(-1)


def centre_crop(x: torch.Tensor, fraction: float = 7 / 8) -> torch.Tensor:
    """The central ``fraction`` of each side, resized back to the input size."""
    height, width = x.shape[-2:]
    crop_h, crop_w = max(1, round(height * fraction)), max(1, round(width * fraction))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    from torch.nn.functional import interpolate

    crop = x[..., top:top + crop_h, left:left + crop_w]
    return interpolate(crop, size=(height, width), mode="bilinear", align_corners=False, antialias=True)


TTA_VIEWS: dict[str, tuple[View, ...]] = {
    "none": (identity,),
    "flip": (identity, mirror),
    "flip_crop": (identity, mirror, centre_crop, lambda x: mirror(centre_crop(x))),
}


def tta_views(name: str) -> tuple[View, ...]:
    """The views of ``--tta name``; a UserError listing the choices otherwise."""
    if name not in TTA_VIEWS:
        raise UserError(f"--tta {name} is not one of: {', '.join(TTA_VIEWS)}")
    return TTA_VIEWS[name]


def averaged_log_probabilities(model, x: torch.Tensor, views: tuple[View, ...]) -> torch.Tensor:
    """``(N, classes)``: the log of ``model``'s softmax averaged over ``views`` of the images ``x``
    (computed in log space; with one view, exactly the log-softmax of the plain score)."""
    if getattr(model, "inputs_are_features", False):
        raise UserError("--tta augments images, and this model reads cached backbone features: evaluate "
                        "its checkpoint (rebuilt on images) instead")
    import torch

    log_probabilities = torch.stack([model(view(x)).float().log_softmax(dim=-1) for view in views])
    return torch.logsumexp(log_probabilities, dim=0) - math.log(len(views))
