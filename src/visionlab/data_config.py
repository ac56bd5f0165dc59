"""What a network expects of its input: channels, size and normalisation statistics.

The one module that both ``data/`` (which resizes and normalises) and ``nets/`` (which
declares what it was trained on) import, so neither imports the other; timm keeps the same
direction (models import data constants, never the reverse).
"""

from __future__ import annotations

from dataclasses import dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def fit_stats(stats: tuple[float, ...], in_chans: int) -> tuple[float, ...]:
    """Per-channel stats for ``in_chans`` channels: as given, or their mean repeated."""
    if len(stats) == in_chans:
        return tuple(stats)
    return (sum(stats) / len(stats),) * in_chans


@dataclass(frozen=True)
class DataConfig:
    """The input a network expects: channels and size, and the normalisation stats."""

    in_chans: int
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bilinear"
