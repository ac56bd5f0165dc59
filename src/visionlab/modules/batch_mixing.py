"""MixUp and CutMix: a classifier trained on blends of pairs of images, with blended targets.

MixUp (Zhang et al. 2018) takes ``lam * x_i + (1 - lam) * x_j``; CutMix (Yun et al. 2019) pastes
a box of ``x_j`` into ``x_i``, ``1 - lam`` of its area. Either way the target is the same
blend of the two (label-smoothed) one-hot labels, and the loss is cross-entropy against that
soft target. As in timm's ``Mixup`` ("batch" mode), one ``lam`` serves the whole batch, each
image is paired with the batch read backwards, and label smoothing is applied to each one-hot
label before the blend, so with ``lam = 1`` the loss is exactly ``cross_entropy(...,
label_smoothing=...)``.

The random draws of a batch come from a generator seeded by ``(seed, epoch, batch index)``:
a run resumed from a checkpoint mixes its batches as the uninterrupted run did.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from visionlab.errors import UserError


@dataclass(frozen=True)
class MixedBatch:
    """A mixed batch: the images, their soft targets ``(N, num_classes)`` (rows sum to 1), the
    weight ``lam`` of each image's own label and which blend made it ("mixup", "cutmix", "none")."""

    images: torch.Tensor
    targets: torch.Tensor
    lam: float
    method: str

    def dominant_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """The label with the larger weight in each blend (what training accuracy is counted against)."""
        return labels if self.lam >= 0.5 else labels.flip(0)


def soft_targets(labels: torch.Tensor, num_classes: int, lam: float, label_smoothing: float) -> torch.Tensor:
    """``lam`` times each label's smoothed one-hot plus ``1 - lam`` times its partner's (the batch
    read backwards), as float32 rows that sum to 1."""
    off = label_smoothing / num_classes
    one_hot = torch.full((len(labels), num_classes), off, device=labels.device)
    one_hot.scatter_(1, labels[:, None], 1.0 - label_smoothing + off)
    return lam * one_hot + (1.0 - lam) * one_hot.flip(0)


def soft_target_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-sum(targets * log_softmax(logits))`` (computed in float32)."""
    return -(targets * F.log_softmax(logits.float(), dim=-1)).sum(dim=-1).mean()


def cutmix_box(height: int, width: int, lam: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A box ``(top, bottom, left, right)`` of about ``1 - lam`` of the image's area around a uniform
    centre, clipped to the image (CutMix's sampling)."""
    ratio = float(np.sqrt(1.0 - lam))
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy, cx = int(rng.integers(height)), int(rng.integers(width))
    top, bottom = np.clip([cy - cut_h // 2, cy + cut_h // 2], 0, height)
    left, right = np.clip([cx - cut_w // 2, cx + cut_w // 2], 0, width)
    return int(top), int(bottom), int(left), int(right)


class BatchMixing:
    """The ``mixup`` config group: MixUp and/or CutMix of training batches (the classifier applies it).

    ``mixup_alpha``, ``cutmix_alpha``: the Beta(alpha, alpha) that ``lam`` is drawn from; 0 turns
    that blend off. With both on, each batch uses CutMix with probability ``switch_prob``.
    ``prob``: the share of batches mixed at all. ``off_epoch``: from this epoch on (0-based) the
    batches are left whole (timm's ``mixup_off_epoch``: the last epochs fit the real images).
    ``seed``: the run's seed (None: one is drawn), see the module docstring.
    """

    def __init__(self, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0, switch_prob: float = 0.5,
                 prob: float = 1.0, off_epoch: int | None = None, seed: int | None = None) -> None:
        for name, value in (("mixup_alpha", mixup_alpha), ("cutmix_alpha", cutmix_alpha)):
            if not value >= 0:
                raise UserError(f"mixup.{name}={value} must be >= 0 (0: off; e.g. 0.2 for MixUp, "
                                "1.0 for CutMix)")
        for name, value in (("switch_prob", switch_prob), ("prob", prob)):
            if not 0.0 <= value <= 1.0:
                raise UserError(f"mixup.{name}={value} must be a probability in [0, 1]")
        if off_epoch is not None and off_epoch < 0:
            raise UserError(f"mixup.off_epoch={off_epoch} must be >= 0, or null (mix every epoch)")
        self.mixup_alpha, self.cutmix_alpha = float(mixup_alpha), float(cutmix_alpha)
        self.switch_prob, self.prob, self.off_epoch = float(switch_prob), float(prob), off_epoch
        self.seed = seed if seed is not None else random.SystemRandom().randrange(2**31)

    @property
    def enabled(self) -> bool:
        """Whether any batch is ever mixed."""
        return (self.mixup_alpha > 0 or self.cutmix_alpha > 0) and self.prob > 0

    def describe(self) -> str:
        """The blends in words, for logs and errors (e.g. ``MixUp (alpha 0.2)``)."""
        parts = [f"MixUp (alpha {self.mixup_alpha:g})"] if self.mixup_alpha > 0 else []
        parts += [f"CutMix (alpha {self.cutmix_alpha:g})"] if self.cutmix_alpha > 0 else []
        return " / ".join(parts) or "no mixing"

    def mixes_in_epoch(self, epoch: int) -> bool:
        """Whether batches of ``epoch`` are mixed (not past ``off_epoch``)."""
        return self.enabled and (self.off_epoch is None or epoch < self.off_epoch)

    def _choose(self, rng: np.random.Generator) -> tuple[str, float]:
        """The blend of one batch and its ``lam`` (before CutMix's correction for the clipped box)."""
        if rng.random() >= self.prob:
            return "none", 1.0
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha <= 0 or rng.random() < self.switch_prob)
        if use_cutmix:
            return "cutmix", float(rng.beta(self.cutmix_alpha, self.cutmix_alpha))
        return "mixup", float(rng.beta(self.mixup_alpha, self.mixup_alpha))

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, num_classes: int, label_smoothing: float,
                 epoch: int, batch_idx: int) -> MixedBatch:
        """The mixed batch for ``images`` ``(N, C, H, W)`` and integer ``labels`` ``(N,)``."""
        method, lam = "none", 1.0
        if self.mixes_in_epoch(epoch):
            rng = np.random.default_rng((self.seed, epoch, batch_idx))
            method, lam = self._choose(rng)
        if method == "mixup":
            images = images * lam + images.flip(0) * (1.0 - lam)
        elif method == "cutmix":
            height, width = images.shape[-2:]
            top, bottom, left, right = cutmix_box(height, width, lam, rng)
            images = images.clone()
            images[..., top:bottom, left:right] = images.flip(0)[..., top:bottom, left:right]
            lam = 1.0 - (bottom - top) * (right - left) / (height * width)
        return MixedBatch(images, soft_targets(labels, num_classes, lam, label_smoothing), lam, method)
