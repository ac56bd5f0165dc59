"""PSNR and SSIM of restored images, over the whole image or only a region of it (an
inpainting hole), accumulated over a validation epoch and synchronised across processes."""

from __future__ import annotations

import math

import torch
from torchmetrics import Metric
from torchmetrics.functional.image import structural_similarity_index_measure


class RestorationScores(Metric):
    """``psnr`` (dB) and ``ssim`` of images against their originals, both in [-1, 1].

    PSNR is ``10 log10(1 / MSE)`` on the [0, 1] scale, the MSE pooled over every counted pixel
    of the epoch (as torchmetrics' ``PeakSignalNoiseRatio`` pools it); SSIM is torchmetrics'
    SSIM map (11x11 Gaussian window) averaged over the counted pixels. With ``region`` (N, 1,
    H, W), 1 where to count, only those pixels count: the hole of an inpainted image.
    """

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        for name in ("squared_error", "ssim_sum", "pixels"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, images: torch.Tensor, targets: torch.Tensor, region: torch.Tensor | None = None) -> None:
        """Add a batch: ``images`` and ``targets`` (N, C, H, W) in [-1, 1]."""
        images = (images.float() * 0.5 + 0.5).clamp(0, 1)
        targets = (targets.float() * 0.5 + 0.5).clamp(0, 1)
        if region is None:
            region = torch.ones_like(targets[:, :1])
        region = region.float().expand_as(targets)
        # In float32 even under bf16/16-mixed autocast: SSIM's variances are differences of
        # near-equal squares, which half precision cancels into nonsense (SSIM < 0).
        with torch.autocast(images.device.type, enabled=False):
            _, ssim_map = structural_similarity_index_measure(images, targets, data_range=1.0,
                                                              reduction="none", return_full_image=True)
        self.squared_error += (((images - targets) ** 2) * region).sum().double()
        self.ssim_sum += (ssim_map * region).sum().double()
        self.pixels += region.sum().double()

    def compute(self) -> dict[str, float]:
        """``{"psnr": ..., "ssim": ...}`` over the counted pixels (inf PSNR for a perfect match)."""
        mse = float(self.squared_error / self.pixels.clamp_min(1))
        return {"psnr": 10 * math.log10(1 / mse) if mse > 0 else math.inf,
                "ssim": float(self.ssim_sum / self.pixels.clamp_min(1))}
