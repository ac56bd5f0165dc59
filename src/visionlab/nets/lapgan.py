"""LAPGAN's networks (Denton et al. 2015): a DCGAN at the coarsest size, then per finer level a
generator of the Laplacian detail given the upscaled coarser image, and discriminators."""

from __future__ import annotations

import torch
from torch import nn

from visionlab.errors import UserError
from visionlab.nets.gan import DCGANDiscriminator, DCGANGenerator
from visionlab.nets.pyramid import up


def pyramid_sizes(image_size: int, levels: int) -> list[int]:
    """The image size of every level, coarsest first: ``image_size`` halved ``levels - 1`` times,
    down to at least 8 px (level 0's DCGAN). A pyramid that does not fit is a UserError."""
    coarsest = image_size // 2 ** max(levels - 1, 0)
    if levels < 2 or coarsest * 2 ** (levels - 1) != image_size or coarsest < 8 or coarsest % 2:
        deepest = max((lv for lv in range(2, 8) if image_size % 2 ** (lv - 1) == 0
                       and image_size // 2 ** (lv - 1) >= 8 and image_size // 2 ** (lv - 1) % 2 == 0),
                      default=None)
        fix = (f"use 2 to {deepest} levels for {image_size} px" if deepest
               else "use an image_size of 16, 32, 64 (a multiple of 16)")
        raise UserError(f"model.levels={levels} does not fit model.image_size={image_size}: each level "
                        f"halves the size, down to an even coarsest size of at least 8 px; {fix}")
    return [coarsest * 2**k for k in range(levels)]


class DetailGenerator(nn.Module):
    """One finer level's generator: the upscaled coarser image and a noise plane -> the detail
    (Laplacian residual) to add to it. ``depth`` 3x3 convolutions, BatchNorm + ReLU between."""

    def __init__(self, channels: int, width: int = 64, depth: int = 3) -> None:
        super().__init__()
        layers, cin = [], channels + 1
        for _ in range(depth - 1):
            layers += [nn.Conv2d(cin, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(True)]
            cin = width
        layers.append(nn.Conv2d(cin, channels, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, coarse_up: torch.Tensor) -> torch.Tensor:
        """The detail ``(N, C, H, W)`` for ``coarse_up`` (the coarser image, upscaled to H x W)."""
        noise = torch.randn_like(coarse_up[:, :1])
        return self.net(torch.cat([coarse_up, noise], dim=1))


class LAPGANGenerator(nn.Module):
    """The whole pyramid: ``levels[0]`` (a DCGAN generator) draws the coarsest image from noise
    (and a class label when conditional); every further level upscales the image and adds the
    detail its :class:`DetailGenerator` draws."""

    def __init__(self, latent_dim: int, channels: int, sizes: list[int], width: int = 32,
                 detail_width: int = 64, detail_depth: int = 3, num_classes: int = 0) -> None:
        super().__init__()
        self.levels = nn.ModuleList([DCGANGenerator(latent_dim, channels, sizes[0], width, num_classes)])
        self.levels.extend(DetailGenerator(channels, detail_width, detail_depth) for _ in sizes[1:])

    def pyramid(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The image at every level, coarsest first, for noise ``z``."""
        images = [self.levels[0](z, labels)]
        for level in self.levels[1:]:
            coarse_up = up(images[-1])
            images.append(coarse_up + level(coarse_up))
        return images

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images at the finest size for noise ``z``."""
        return self.pyramid(z, labels)[-1]


def build_discriminators(channels: int, sizes: list[int], width: int = 32, num_classes: int = 0,
                         spectral_norm: bool = False) -> nn.ModuleList:
    """A DCGAN discriminator per level: of images at the coarsest; of (upscaled coarser image,
    image) pairs, stacked as 2C channels, at every finer level."""
    return nn.ModuleList(
        [DCGANDiscriminator(channels, sizes[0], width, num_classes, spectral_norm)]
        + [DCGANDiscriminator(2 * channels, size, width, 0, spectral_norm) for size in sizes[1:]])
