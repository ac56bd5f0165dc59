"""SRGAN's generator (Ledig et al. 2017): SRResNet, residual blocks and pixel-shuffle upsampling,
and the bicubic resampling that makes its low-resolution inputs and its baseline."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from visionlab.errors import UserError

SCALES = (2, 4, 8)


def check_scale(scale: int, image_size: int) -> int:
    """``scale`` if it is a supported factor that divides ``image_size``, else a UserError."""
    if scale not in SCALES:
        raise UserError(f"model.scale={scale} is not one of: {', '.join(map(str, SCALES))}")
    if image_size % scale or image_size // scale < 4:
        raise UserError(f"model.scale={scale} does not divide model.image_size={image_size} into inputs "
                        f"of at least 4 px: use an image_size that is a multiple of {4 * scale}, or another "
                        "scale")
    return scale


def bicubic_downscale(images: torch.Tensor, scale: int) -> torch.Tensor:
    """``images`` made ``scale`` times smaller by antialiased bicubic resampling (deterministic):
    the low-resolution inputs of super-resolution."""
    size = (images.shape[-2] // scale, images.shape[-1] // scale)
    return F.interpolate(images, size=size, mode="bicubic", antialias=True, align_corners=False)


def bicubic_upscale(images: torch.Tensor, scale: int) -> torch.Tensor:
    """``images`` made ``scale`` times larger by bicubic interpolation: the baseline SRGAN must beat."""
    return F.interpolate(images, scale_factor=scale, mode="bicubic", align_corners=False)


class ResidualBlock(nn.Module):
    """SRResNet's block: conv-BN-PReLU-conv-BN, added to its input."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.PReLU(width),
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` plus the block's residual."""
        return x + self.body(x)


class SRResNet(nn.Module):
    """Low-resolution images -> images ``scale`` times larger.

    A 9x9 convolution, ``blocks`` residual blocks with a long skip around them, then
    ``log2(scale)`` steps of convolution + pixel shuffle (x2 each) and a 9x9 convolution to
    the image channels. Unlike the paper, the network predicts the difference from the
    bicubic upscaling of its input (as VDSR does): it starts at bicubic quality and every
    step improves on it, which matters with minutes of CPU training. Fully convolutional:
    any input size works.
    """

    def __init__(self, channels: int, scale: int, width: int = 64, blocks: int = 8) -> None:
        super().__init__()
        self.scale = scale
        self.head = nn.Sequential(nn.Conv2d(channels, width, 9, padding=4), nn.PReLU(width))
        self.blocks = nn.Sequential(*[ResidualBlock(width) for _ in range(blocks)],
                                    nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width))
        upsampling = []
        for _ in range(int(math.log2(scale))):
            upsampling += [nn.Conv2d(width, width * 4, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(width)]
        self.upsample = nn.Sequential(*upsampling)
        self.tail = nn.Conv2d(width, channels, 9, padding=4)
        nn.init.zeros_(self.tail.weight)  # starts as bicubic upscaling exactly
        nn.init.zeros_(self.tail.bias)

    def forward(self, low: torch.Tensor) -> torch.Tensor:
        """``(N, C, scale*H, scale*W)`` for low-resolution ``low`` ``(N, C, H, W)`` in [-1, 1]."""
        features = self.head(low)
        features = features + self.blocks(features)
        return bicubic_upscale(low, self.scale) + self.tail(self.upsample(features))
