"""The inpainting generator: an encoder-decoder that sees an image with holes and the hole mask
and fills the holes (context encoders, Pathak et al. 2016, with U-Net skip connections)."""

from __future__ import annotations

import torch
from torch import nn

from visionlab.errors import UserError


def check_depth(depth: int, image_size: int) -> int:
    """``depth`` if ``image_size`` halves ``depth`` times down to at least 4 px, else a UserError."""
    if depth < 1 or image_size % 2**depth or image_size // 2**depth < 4:
        raise UserError(f"model.depth={depth} does not fit model.image_size={image_size}: the encoder halves "
                        f"the image depth times down to at least 4 px (image_size a multiple of "
                        f"{4 * 2**max(depth, 1)})")
    return depth


def _down(cin: int, cout: int, norm: bool) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, 4, 2, 1, bias=not norm)]
    return nn.Sequential(*layers, *([nn.BatchNorm2d(cout)] if norm else []), nn.LeakyReLU(0.2, True))


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(True))


class InpaintingGenerator(nn.Module):
    """(image with holes, mask) -> the image with its holes filled.

    The input is the image with hole pixels set to 0 and the mask (1 = hole) as one more
    channel. ``depth`` stride-2 convolutions encode it, as many transposed convolutions
    decode it, each joined to the encoder's map of the same size (U-Net), and a 3x3
    convolution with Tanh makes the image. Only the hole's pixels are taken from that
    output: the visible pixels are copied through exactly.
    """

    def __init__(self, channels: int, width: int = 32, depth: int = 3) -> None:
        super().__init__()
        widths = [width * 2 ** min(i, 3) for i in range(depth)]
        self.encoder = nn.ModuleList()
        cin = channels + 1
        for i, w in enumerate(widths):
            self.encoder.append(_down(cin, w, norm=i > 0))
            cin = w
        self.decoder = nn.ModuleList()
        for i in reversed(range(depth)):
            skip = widths[i - 1] if i > 0 else channels + 1
            out = widths[i - 1] if i > 0 else width
            self.decoder.append(_up(cin, out))
            cin = out + skip
        self.out = nn.Sequential(nn.Conv2d(cin, channels, 3, padding=1), nn.Tanh())

    def forward(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``images`` (N, C, H, W) in [-1, 1] with their holes (``mask`` (N, 1, H, W), 1 = hole) filled."""
        x = torch.cat([images * (1 - mask), mask], dim=1)
        skips = [x]
        for layer in self.encoder:
            x = layer(x)
            skips.append(x)
        skips.pop()
        for layer in self.decoder:
            x = torch.cat([layer(x), skips.pop()], dim=1)
        return images * (1 - mask) + self.out(x) * mask
