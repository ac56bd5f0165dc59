"""Train and eval transform pipelines built from a backbone's expected input."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torchvision.transforms import v2

from visionlab.data_config import DataConfig

AugmentFactory = Callable[[int], Sequence[Callable]]


def _to_model_input(data_config: DataConfig) -> list[Callable]:
    """Resize to the backbone's size, convert to float in [0, 1], fix channels, normalise."""
    size = data_config.input_size
    return [
        v2.ToImage(),
        v2.Resize((size, size), antialias=True),
        v2.ToDtype(torch.float32, scale=True),
        MatchChannels(data_config.in_chans),
        v2.Normalize(mean=list(data_config.mean), std=list(data_config.std)),
    ]


def eval_transform(data_config: DataConfig) -> v2.Compose:
    """Deterministic pipeline for validation, test and prediction: never augmented."""
    return v2.Compose(_to_model_input(data_config))


def train_transform(data_config: DataConfig, augment: AugmentFactory | None) -> v2.Compose:
    """The eval pipeline preceded by the augmentation preset (applied to the PIL image)."""
    steps = list(augment(data_config.input_size)) if augment is not None else []
    return v2.Compose([*steps, *_to_model_input(data_config)])


class MatchChannels(torch.nn.Module):
    """Expand grayscale to ``channels`` by repetition, or average RGB down to one channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """Return ``img`` (C, H, W) with ``self.channels`` channels."""
        c = img.shape[-3]
        if c == self.channels:
            return img
        if c == 1:
            return img.expand(*img.shape[:-3], self.channels, *img.shape[-2:]).clone()
        if self.channels == 1:
            return img[..., :3, :, :].mean(dim=-3, keepdim=True)
        return img[..., : self.channels, :, :]
