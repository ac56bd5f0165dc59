"""SRGAN (Ledig et al. 2017): super-resolution by an SRResNet generator trained with a pixel,
a perceptual and an adversarial loss, against bicubic upscaling."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from visionlab.finetune.plans import FreezePlan
from visionlab.modules.adversarial import OptimizerFactory
from visionlab.modules.base import register_kind
from visionlab.modules.restoration import RestorationGAN, plain_arguments
from visionlab.nets.backbone import Backbone
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

    def __init__(
        self,
        optimizer: OptimizerFactory,
        image_size: int = 64,
        channels: int = 3,
        scale: int = 4,
        blocks: int = 8,
        g_width: int = 64,
        d_width: int = 64,
        discriminator: str = "dcgan",
        loss: str = "bce",
        pixel_loss: str = "mse",
        perceptual_weight: float = 0.0,
        perceptual_layer: str | None = None,
        adv_weight: float = 1e-3,
        g_lr: float = 1e-4,
        d_lr: float = 1e-4,
        spectral_norm: bool = False,
        ema_decay: float = 0.0,
        grad_clip: float | None = None,
        num_samples: int = 8,
        backbone: Backbone | None = None,
        freeze_plan: FreezePlan | None = None,
    ) -> None:
        hparams = plain_arguments(locals())
        check_scale(scale, image_size)
        generator = SRResNet(channels, scale, g_width, blocks)
        super().__init__(optimizer, generator, hparams, backbone, freeze_plan)

    restore_verb = "upscaled"

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
