"""Inpainting, "completing missing information" (context encoders, Pathak et al. 2016): a
generator fills holes in images, trained with a reconstruction loss on the hole and an
adversarial loss, against filling the hole with the mean colour of the visible pixels."""

from __future__ import annotations

import torch

from visionlab.errors import UserError
from visionlab.modules.adversarial import OptimizerFactory
from visionlab.modules.base import register_kind
from visionlab.modules.restoration import RestorationGAN
from visionlab.nets.inpainting import InpaintingGenerator, check_depth
from visionlab.nets.masks import check_mask, make_masks


def mean_fill(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``images`` with every hole pixel (``mask`` 1) set to the mean colour of that image's visible
    pixels: the baseline inpainting must beat."""
    visible = 1 - mask
    counts = visible.sum(dim=(2, 3), keepdim=True).clamp_min(1)
    mean = (images * visible).sum(dim=(2, 3), keepdim=True) / counts
    return images * visible + mean * mask


D_INPUTS = ("image", "hole")


@register_kind
class InpaintModule(RestorationGAN):
    """Fill the holes ``mask`` (center | random_boxes | free_form, :mod:`visionlab.nets.masks`) makes.

    G (:class:`~visionlab.nets.inpainting.InpaintingGenerator`: ``depth`` levels, ``g_width``
    channels) sees the image with its holes blanked and the mask, and only its hole pixels are
    used: the visible ones are copied through. The pixel loss counts the hole only; D judges
    whole images (``d_input=image``) or the hole alone (``hole``). Training masks are drawn from
    the run's seeded RNG, validation masks from a fixed seed per batch, the same every epoch.
    Metrics (``val/hole_psnr``, ``val/hole_ssim``, and ``val/hole_psnr_mean_fill``,
    ``val/hole_ssim_mean_fill`` for
    the baseline) count hole pixels only; each validation row shows the masked input, the mean
    fill, the inpainting and the original.
    """

    kind = "inpaint"
    sample_options = ("input", "mask")
    baseline_name = "mean_fill"
    region_name = "hole_"
    restore_verb = "inpainted"
    panel_names = ("masked", "mean_fill", "inpainted", "original")

    # Where inpainting's defaults differ from the shared ones (a narrower U-Net, an L1 hole loss).
    DEFAULTS = {"g_width": 32, "pixel_loss": "l1", "g_lr": 2e-4, "d_lr": 2e-4}

    def __init__(self, optimizer: OptimizerFactory | None = None, mask: str = "center", depth: int = 3,
                 d_input: str = "image", **options) -> None:
        """``mask``, ``depth`` (U-Net levels) and ``d_input`` are inpainting's own; ``options`` are
        those every restoration GAN shares (:class:`RestorationGAN`), with :data:`DEFAULTS`."""
        check_mask(mask)
        if d_input not in D_INPUTS:
            raise UserError(f"model.d_input={d_input!r} is not one of: {', '.join(D_INPUTS)}")
        super().__init__(optimizer, {"mask": mask, "depth": depth, "d_input": d_input},
                         **{**self.DEFAULTS, **options})

    def build_generator(self) -> InpaintingGenerator:
        """The U-Net of ``depth`` levels, which ``image_size`` must allow."""
        h = self.hparams
        check_depth(h.depth, h.image_size)
        return InpaintingGenerator(h.channels, h.g_width, h.depth)

    def restore_size(self) -> int:
        """Holes are drawn at the size the model was trained on."""
        return self.hparams.image_size

    def restore_outputs(self, image: torch.Tensor, mask: str | None, seed: int) -> dict[str, torch.Tensor]:
        """``mask`` holes (the model's own kind when None) drawn from ``seed``: the masked image and
        the model's filling."""
        holes = make_masks(mask or self.hparams.mask, 1, self.hparams.image_size, seed).to(image)
        return {"masked": image * (1 - holes), "inpainted": self(image, holes)}

    def degrade(self, images: torch.Tensor, seed: int | None
                ) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``((images, mask), mask)``: the generator blanks the holes itself; the hole is what counts.
        Without ``seed`` the masks' seed is drawn from the run's (seeded) RNG."""
        if seed is None:
            seed = int(torch.randint(2**31 - 1, (1,)))
        mask = make_masks(self.hparams.mask, len(images), images.shape[-1], seed).to(images)
        return (images, mask), mask

    def judge(self, images: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
        """D's logits for the whole image (``d_input=image``) or for the hole alone (``hole``: the
        visible pixels blanked, so that D judges only what was filled in)."""
        return self.discriminator(images * region if self.hparams.d_input == "hole" else images)

    def baseline(self, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The holes filled with the mean visible colour."""
        return mean_fill(*inputs)

    def panels(self, inputs, baseline, restored, real) -> list[torch.Tensor]:
        """The input with its holes shown mid-grey, the mean fill, the inpainting, the original."""
        images, mask = inputs
        return [images * (1 - mask), baseline, restored, real]
