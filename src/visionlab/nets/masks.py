"""Hole masks for inpainting, drawn from a seed: ``center``, ``random_boxes``, ``free_form``.

A mask is ``(N, 1, H, W)`` float, 1 where the image is hidden. The same kind, size, count and
seed give the same masks on every machine (a CPU ``torch.Generator`` draws every number), so
validation holes are the same every epoch and a run's holes can be reproduced.
"""

from __future__ import annotations

import math

import torch

from visionlab.errors import UserError

MASKS = ("center", "random_boxes", "free_form")


def check_mask(kind: str, setting: str = "model.mask") -> str:
    """``kind`` if it is a known mask kind, else a UserError naming ``setting`` and the kinds."""
    if kind not in MASKS:
        raise UserError(f"{setting}={kind!r} is not one of: {', '.join(MASKS)}")
    return kind


def _uniform(generator: torch.Generator, low: float, high: float, n: int) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def center_masks(n: int, size: int) -> torch.Tensor:
    """The middle square of half the side (a quarter of the image), as context encoders use."""
    mask = torch.zeros(n, 1, size, size)
    start = size // 4
    mask[..., start:start + size // 2, start:start + size // 2] = 1
    return mask


def box_masks(n: int, size: int, generator: torch.Generator, max_boxes: int = 3) -> torch.Tensor:
    """1 to ``max_boxes`` rectangles per image, each side 1/8 to 1/2 of the image, anywhere."""
    mask = torch.zeros(n, 1, size, size)
    for image in range(n):
        boxes = int(torch.randint(1, max_boxes + 1, (1,), generator=generator))
        sides = (_uniform(generator, size / 8, size / 2, 2 * boxes)).round().long().view(boxes, 2)
        for height, width in sides.tolist():
            top = int(torch.randint(0, size - height + 1, (1,), generator=generator))
            left = int(torch.randint(0, size - width + 1, (1,), generator=generator))
            mask[image, 0, top:top + height, left:left + width] = 1
    return mask


def stroke_masks(n: int, size: int, generator: torch.Generator, max_strokes: int = 4) -> torch.Tensor:
    """Free-form holes: 1 to ``max_strokes`` brush strokes per image, each a random walk of 3 to 6
    segments 1/8 to 1/4 of the image long, 1/16 to 1/8 of it thick (as in free-form inpainting,
    Yu et al. 2019)."""
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    grid = torch.stack([ys, xs], dim=-1)  # (H, W, 2)
    mask = torch.zeros(n, 1, size, size)
    for image in range(n):
        for _ in range(int(torch.randint(1, max_strokes + 1, (1,), generator=generator))):
            steps = int(torch.randint(3, 7, (1,), generator=generator))
            angles = _uniform(generator, 0, 2 * math.pi, steps)
            lengths = _uniform(generator, size / 8, size / 4, steps)
            moves = torch.stack([angles.sin(), angles.cos()], dim=1) * lengths[:, None]
            start = torch.rand(1, 2, generator=generator) * size
            vertices = torch.cat([start, start + moves.cumsum(0)]).clamp(0, size - 1)
            radius = float(_uniform(generator, size / 32, size / 16, 1))
            for start, end in zip(vertices[:-1], vertices[1:], strict=True):
                segment = end - start
                t = ((grid - start) @ segment / segment.dot(segment).clamp_min(1e-6)).clamp(0, 1)
                distance = (grid - (start + t[..., None] * segment)).norm(dim=-1)
                mask[image, 0][distance <= radius] = 1
    return mask


def make_masks(kind: str, n: int, size: int, seed: int) -> torch.Tensor:
    """``n`` masks ``(n, 1, size, size)`` of ``kind`` (1 = hole), the same for the same seed."""
    generator = torch.Generator().manual_seed(seed)
    if check_mask(kind) == "center":
        return center_masks(n, size)
    if kind == "random_boxes":
        return box_masks(n, size, generator)
    return stroke_masks(n, size, generator)
