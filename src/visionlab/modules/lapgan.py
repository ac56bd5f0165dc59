"""LAPGAN (Denton et al. 2015): a GAN per level of a Laplacian pyramid, coarse to fine."""

from __future__ import annotations

import torch

from visionlab.errors import UserError
from visionlab.modules.adversarial import OptimizerFactory
from visionlab.modules.base import register_kind
from visionlab.modules.diffaugment import diff_augment
from visionlab.modules.noise_gan import NoiseGAN
from visionlab.nets.lapgan import LAPGANGenerator, build_discriminators, pyramid_sizes
from visionlab.nets.pyramid import laplacian_pyramid, up

SCHEDULES = ("joint", "progressive")


@register_kind
class LAPGANModule(NoiseGAN):
    """Images drawn coarse to fine over ``levels`` pyramid levels (e.g. 8 -> 16 -> 32 -> 64 px).

    Level 0 is a DCGAN at the coarsest size (class-conditional with ``conditional``); each
    finer level k has a generator of the Laplacian detail given the upscaled level k-1 image
    and a discriminator of (upscaled coarser image, image) pairs. In training every level
    learns from real data: the real images' Laplacian pyramid gives level k's condition (the
    upscaled real level k-1 image) and its real sample (condition + real detail); sampling
    runs the whole pyramid on the generator's own images. ``schedule=joint`` updates every
    level on every batch; ``progressive`` trains level 0 for the first ``max_epochs / levels``
    epochs, then level 1, and so on (each level gets the whole step while it trains).

    All levels' generators share one optimizer (at ``g_lr``) and all discriminators another
    (``d_lr``): their parameters are disjoint, so summing the levels' losses is the same update
    as one optimizer per level. ``val/fid`` / ``val/kid`` (every ``fid_every`` epochs) measure
    the final images; every epoch writes the fixed noise's grid at every level.
    """

    kind = "lapgan"
    DEFAULTS = {"image_size": 64, "width": 32}

    def __init__(self, optimizer: OptimizerFactory | None = None, levels: int = 4, detail_width: int = 64,
                 detail_depth: int = 3, schedule: str = "joint", **options) -> None:
        """LAPGAN's own settings (``levels``, the detail generators' ``detail_width`` and
        ``detail_depth``, the ``schedule``); ``options`` are those every noise GAN shares
        (:class:`~visionlab.modules.noise_gan.NoiseGAN`), with :data:`DEFAULTS`."""
        if schedule not in SCHEDULES:
            raise UserError(f"model.schedule={schedule!r} is not one of: {', '.join(SCHEDULES)}")
        own = {"levels": levels, "detail_width": detail_width, "detail_depth": detail_depth,
               "schedule": schedule}
        super().__init__(optimizer, own, **{**self.DEFAULTS, **options})
        h = self.hparams
        sizes = pyramid_sizes(h.image_size, levels)
        self.generator = LAPGANGenerator(h.latent_dim, h.channels, sizes, h.width, detail_width, detail_depth,
                                         self.classes)
        self.discriminator = build_discriminators(h.channels, sizes, h.width, self.classes, h.spectral_norm)
        self.init_ema()
        self.register_fixed_noise(h.num_samples, h.latent_dim, self.classes)

    def fake_images(self, n: int, labels: torch.Tensor | None) -> torch.Tensor:
        """``n`` final-size images in [-1, 1] from the (EMA) pyramid, for fresh noise (the metrics')."""
        return self(torch.randn(n, self.hparams.latent_dim, device=self.device), labels)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Final-size images from the (EMA) pyramid for noise ``z``."""
        return self.sampling_generator(z, labels if self.conditional else None)

    def active_levels(self) -> list[int]:
        """The levels trained this epoch: all (joint), or one (progressive)."""
        levels = self.hparams.levels
        if self.hparams.schedule == "joint":
            return list(range(levels))
        epochs = self.trainer.max_epochs
        if not epochs or epochs < levels:
            raise UserError(f"model.schedule=progressive splits trainer.max_epochs={epochs} among {levels} "
                            "levels: set max_epochs to at least the number of levels, or schedule=joint")
        return [min(levels - 1, self.current_epoch * levels // epochs)]

    def level_batches(self, real: torch.Tensor) -> list[tuple[torch.Tensor | None, torch.Tensor]]:
        """Per level, coarsest first: (condition, real image). Level 0 has no condition; level k's
        is the upscaled real level k-1 image, and its real image is that plus the real detail."""
        coarsest, details = laplacian_pyramid(real, self.hparams.levels)
        batches, image = [(None, coarsest)], coarsest
        for detail in details:
            condition = up(image)
            image = condition + detail
            batches.append((condition, image))
        return batches

    def judge(self, level: int, condition: torch.Tensor | None, image: torch.Tensor,
              labels: torch.Tensor | None) -> torch.Tensor:
        """Level ``level``'s discriminator logits for ``image`` (given ``condition``), after DiffAugment."""
        x = image if condition is None else torch.cat([condition, image], dim=1)
        if self.hparams.diffaugment:
            x = diff_augment(x, self.hparams.diffaugment)
        return self.discriminator[level](x, labels if level == 0 else None)

    def generate(self, level: int, condition: torch.Tensor | None, n: int,
                 labels: torch.Tensor | None) -> torch.Tensor:
        """Level ``level``'s training generator's image: from noise (level 0) or ``condition`` + detail."""
        if condition is None:
            z = torch.randn(n, self.hparams.latent_dim, device=self.device)
            return self.generator.levels[0](z, labels)
        return condition + self.generator.levels[level](condition)

    def training_step(self, batch, batch_idx: int) -> None:
        """A discriminator update, then a generator update, of every active level (losses summed)."""
        real, labels = batch
        labels = labels if self.conditional else None
        g_opt, d_opt = self.optimizers()
        objective, n = self.adversarial_loss, len(real)
        batches = self.level_batches(real)
        levels = [(k, *batches[k]) for k in self.active_levels()]
        d_loss = real.new_zeros(())
        for level, condition, image in levels:
            with torch.no_grad():
                fake = self.generate(level, condition, n, labels)
            d_loss = d_loss + objective.discriminator(self.judge(level, condition, image, labels),
                                                      self.judge(level, condition, fake, labels))
        self.update(d_opt, d_loss, self.discriminator, "discriminator")
        g_loss = real.new_zeros(())
        for level, condition, _ in levels:
            fake = self.generate(level, condition, n, labels)
            g_loss = g_loss + objective.generator(self.judge(level, condition, fake, labels))
        self.update(g_opt, g_loss, self.generator, "generator")
        self.update_ema()
        for name, value in (("d_loss", d_loss), ("g_loss", g_loss)):
            self.log(f"train/{name}", value.detach(), on_step=False, on_epoch=True, prog_bar=True,
                     batch_size=n, sync_dist=True)

    def on_train_epoch_end(self) -> None:
        """The fixed noise through the (EMA) pyramid: the final grid (``samples/fixed_noise``,
        ``samples/epoch_NNN.png``) and every level's (``samples/level_K``, ``samples/level_K/``)."""
        with self.sampling_mode() as generator:
            labels = self.fixed_labels if self.conditional else None
            pyramid = generator.pyramid(self.fixed_noise, labels)
        epoch = self.current_epoch
        for level, images in enumerate(pyramid):
            if level == len(pyramid) - 1:
                self.write_grid(images, self.grid_columns, "samples/fixed_noise", f"epoch_{epoch:03d}.png")
            self.write_grid(images, self.grid_columns, f"samples/level_{level}",
                            f"level_{level}/epoch_{epoch:03d}.png")
