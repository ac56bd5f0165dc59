"""Image grids with text on them, for the figures runs and commands write (PIL, no plotting library)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw
from torchvision.utils import make_grid

CAPTION_HEIGHT = 12  # pixels of the black strip a caption is written on (PIL's default font)


def labelled_grid(images: torch.Tensor, labels: list[str], nrow: int = 8, min_size: int = 64) -> Image.Image:
    """A PIL grid of ``images`` (N, C, H, W) in [0, 1], each tile (at least ``min_size`` pixels)
    captioned with its label, cut to what fits the tile's width."""
    tiles = []
    for img, label in zip(images, labels, strict=True):
        tile = Image.fromarray(img.expand(3, -1, -1).mul(255).byte().permute(1, 2, 0).numpy())
        tile = tile.resize((max(min_size, tile.width), max(min_size, tile.height)), Image.NEAREST)
        draw = ImageDraw.Draw(tile)
        draw.rectangle((0, 0, tile.width, CAPTION_HEIGHT - 1), fill=(0, 0, 0))
        draw.text((2, 0), label[: tile.width // 6], fill=(255, 255, 255))
        tiles.append(torch.from_numpy(np.array(tile)).permute(2, 0, 1))
    grid = make_grid(torch.stack(tiles), nrow=nrow, padding=2)
    return Image.fromarray(grid.permute(1, 2, 0).numpy())


def with_column_labels(grid: torch.Tensor, names: list[str], padding: int = 2) -> Image.Image:
    """``grid`` (3, H, W) in [0, 1], made by ``make_grid`` with ``len(names)`` columns and
    ``padding``, with a strip above it naming each column (low-res | bicubic | SRGAN | high-res)."""
    image = Image.fromarray(grid.mul(255).round().byte().permute(1, 2, 0).numpy())
    labelled = Image.new("RGB", (image.width, image.height + CAPTION_HEIGHT), (0, 0, 0))
    labelled.paste(image, (0, CAPTION_HEIGHT))
    draw = ImageDraw.Draw(labelled)
    column = (image.width - padding) / len(names)
    for index, name in enumerate(names):
        draw.text((padding + index * column + 2, 0), name[: max(1, int(column) // 6)], fill=(255, 255, 255))
    return labelled
