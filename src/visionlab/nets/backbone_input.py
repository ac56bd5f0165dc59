"""Images from elsewhere (a GAN's samples, images at another size) as a backbone's input.

A backbone expects its own input: ``data_config``'s size, channels and normalisation. The
GAN's discriminator and the FID feature network feed it images made for something else, so
they pass through :class:`BackboneInput` first. Every operation is differentiable: the
generator's gradient flows back through it when a backbone is the discriminator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from visionlab.data_config import DataConfig


class BackboneInput(nn.Module):
    """Images in [0, 1], any square size, 1 or 3 channels -> the backbone's normalised input.

    Channels: gray images are repeated to 3, colour images averaged to 1 when the backbone
    is gray. Size: resized (bilinear, antialiased) to ``input_size`` when it differs.
    """

    def __init__(self, data_config: DataConfig) -> None:
        super().__init__()
        self.size, self.channels = data_config.input_size, data_config.in_chans
        self.register_buffer("mean", torch.tensor(data_config.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(data_config.std).view(1, -1, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, in_chans, input_size, input_size)``, normalised with the backbone's mean and std."""
        if images.shape[1] != self.channels:
            images = images.mean(dim=1, keepdim=True).expand(-1, self.channels, -1, -1)
        if images.shape[-2:] != (self.size, self.size):
            images = F.interpolate(images, size=(self.size, self.size), mode="bilinear", antialias=True,
                                   align_corners=False)
        return (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
