"""SRGAN (Ledig et al. 2017): super-resolution by an SRResNet generator trained with a pixel,
a perceptual and an adversarial loss, against bicubic upscaling."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from visionlab.modules.adversarial import OptimizerFactory
from visionlab.modules.base import register_kind
from visionlab.modules.restoration import RestorationGAN
from visionlab.nets.srresnet import SRResNet, bicubic_downscale, bicubic_upscale, check_scale


@register_kind
class SRGANModule(RestorationGAN):
    """Upscale images ``scale`` times (2, 4 or 8).

    Training images at ``image_size`` are the high-resolution targets; their inputs, ``scale``
    times smaller, are made on the fly by antialiased bicubic downscaling, so any image dataset
    serves. G is :class:`~visionlab.nets.srresnet.SRResNet` (``blocks`` residual blocks of
    ``g_width`` channels, predicting the difference from bicubic upscaling); D a conv classifier
    (``dcgan``, ``d_width``) or the ``backbone`` group's network. The baseline is bicubic
    upscaling of the same inputs (``val/psnr_bicubic``, ``val/ssim_bicubic``); each validation
    row shows the input (nearest-upscaled), bicubic, SRGAN and the original.
    """

    kind = "srgan"
    sample_options = ("input",)
    baseline_name = "bicubic"
    panel_names = ("low_res", "bicubic", "srgan", "high_res")
    restore_verb = "upscaled"

    def __init__(self, optimizer: OptimizerFactory | None = None, scale: int = 4, blocks: int = 8,
                 **options) -> None:
        """``scale`` (2, 4 or 8) and ``blocks`` (SRResNet residual blocks) are SRGAN's own; ``options``
        are those every restoration GAN shares (:class:`RestorationGAN`: image size, widths,
        losses, learning rates...)."""
        super().__init__(optimizer, {"scale": scale, "blocks": blocks}, **options)

    def build_generator(self) -> SRResNet:
        """SRResNet for ``scale``, which must divide ``image_size`` into a low-res input of >= 4 px."""
        h = self.hparams
        check_scale(h.scale, h.image_size)
        return SRResNet(h.channels, h.scale, h.g_width, h.blocks)

    def restore_outputs(self, image: torch.Tensor, mask: str | None, seed: int) -> dict[str, torch.Tensor]:
        """The image upscaled at its own size (the network is fully convolutional): ``x<scale>``."""
        return {f"x{self.hparams.scale}": self(image)}

    def degrade(self, images: torch.Tensor, seed: int | None) -> tuple[tuple[torch.Tensor], None]:
        """The bicubic-downscaled images (deterministic: ``seed`` is not needed); every pixel counts."""
        return (bicubic_downscale(images, self.hparams.scale),), None

    def baseline(self, inputs: tuple[torch.Tensor]) -> torch.Tensor:
        """Bicubic upscaling of the low-resolution inputs."""
        return bicubic_upscale(inputs[0], self.hparams.scale)

    def panels(self, inputs, baseline, restored, real) -> list[torch.Tensor]:
        """Low-res (nearest-upscaled), bicubic, SRGAN, high-res."""
        low = F.interpolate(inputs[0], size=real.shape[-2:], mode="nearest")
        return [low, baseline, restored, real]
