"""Gaussian and Laplacian image pyramids (Burt & Adelson 1983), the data path of LAPGAN.

``down`` halves an image (2x2 average), ``up`` doubles it (bilinear). The Laplacian pyramid of an
image keeps its coarsest Gaussian level and, for every finer level, the detail ``up`` cannot
restore: ``h_k = I_k - up(I_{k+1})``. Rebuilding, ``I_k = up(I_{k+1}) + h_k``, is exact by
construction, whatever ``down`` and ``up`` are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def down(images: torch.Tensor) -> torch.Tensor:
    """Half the size: the mean of every 2x2 block."""
    return F.avg_pool2d(images, 2)


def up(images: torch.Tensor) -> torch.Tensor:
    """Twice the size, by bilinear interpolation."""
    return F.interpolate(images, scale_factor=2, mode="bilinear", align_corners=False)


def gaussian_pyramid(images: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """``[I_0 = images, I_1 = down(I_0), ...]``, ``levels`` images, finest first."""
    pyramid = [images]
    for _ in range(levels - 1):
        pyramid.append(down(pyramid[-1]))
    return pyramid


def laplacian_pyramid(images: torch.Tensor, levels: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``(coarsest, residuals)``: the coarsest Gaussian level and the ``levels - 1`` details
    ``h_k = I_k - up(I_{k+1})``, coarsest detail first (the order sampling adds them in)."""
    gaussian = gaussian_pyramid(images, levels)
    residuals = [fine - up(coarse) for fine, coarse in zip(gaussian[:-1], gaussian[1:], strict=True)]
    return gaussian[-1], residuals[::-1]


def reconstruct(coarsest: torch.Tensor, residuals: list[torch.Tensor]) -> torch.Tensor:
    """The image whose Laplacian pyramid is ``(coarsest, residuals)``."""
    image = coarsest
    for residual in residuals:
        image = up(image) + residual
    return image
