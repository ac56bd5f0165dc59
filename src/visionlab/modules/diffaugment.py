"""Differentiable augmentation for GAN training on small data (DiffAugment, Zhao et al. 2020).

A discriminator that sees a few thousand images memorises them and wins within a few hundred
steps; its gradients then stop teaching the generator. Augmenting *both* real and generated
images, differentiably, every time the discriminator looks at them (in its own update and in
the generator's) keeps it from memorising without changing the distribution the generator
learns. Policies: ``color`` (brightness, saturation, contrast), ``translation`` (shift by up
to 1/8 of the size, zero-padded), ``cutout`` (a zeroed square of half the size).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from visionlab.errors import UserError

POLICIES = ("color", "translation", "cutout")


def check_policies(policies: Sequence[str]) -> list[str]:
    """``policies`` as a list, or a UserError naming the valid ones."""
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        raise UserError(f"model.diffaugment has {unknown[0]!r}; valid: {', '.join(POLICIES)}")
    return list(policies)


def _color(x: torch.Tensor) -> torch.Tensor:
    n = len(x)
    x = x + (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) * 2) + mean
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + mean


def _translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    n, _, h, w = x.shape
    pad_h, pad_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    shift_y = torch.randint(-pad_h, pad_h + 1, (n, 1, 1), device=x.device)
    shift_x = torch.randint(-pad_w, pad_w + 1, (n, 1, 1), device=x.device)
    rows = (torch.arange(h, device=x.device).view(1, h, 1) + shift_y + 1).clamp(0, h + 1)
    cols = (torch.arange(w, device=x.device).view(1, 1, w) + shift_x + 1).clamp(0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h, (n, 1, 1), device=x.device) - size_h // 2
    left = torch.randint(0, w, (n, 1, 1), device=x.device) - size_w // 2
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)
    return x * (~inside).unsqueeze(1).to(x.dtype)


AUGMENTS = {"color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(x: torch.Tensor, policies: Sequence[str]) -> torch.Tensor:
    """``x`` (N, C, H, W) with each policy applied, a fresh random draw per image; differentiable in ``x``."""
    for policy in policies:
        x = AUGMENTS[policy](x)
    return x
