"""Image-to-image GANs: a generator restores a degraded image (a low-resolution copy, an image
with holes), a discriminator judges restored images against real ones.

:class:`RestorationGAN` holds what super-resolution (:class:`~visionlab.modules.srgan.SRGANModule`)
and inpainting (:class:`~visionlab.modules.inpaint.InpaintModule`) share: the degradation made
on the fly from any image dataset, the content + adversarial loss, and validation against a
baseline that needs no training (bicubic upscaling, mean fill), with an image row per sample.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from visionlab.errors import UserError
from visionlab.finetune.plans import FreezePlan
from visionlab.metrics.restoration import RestorationScores
from visionlab.modules.adversarial import AdversarialModule, OptimizerFactory, plain_arguments
from visionlab.modules.capabilities import Restores
from visionlab.modules.gan_losses import gan_loss
from visionlab.nets.backbone import Backbone
from visionlab.nets.gan import build_discriminator, uses_backbone
from visionlab.nets.perceptual import PerceptualFeatures

PIXEL_LOSSES = ("mse", "l1")
DISCRIMINATORS = ("dcgan", "backbone", "projected")
VALIDATION_SEED = 1_000_003  # validation batch i degrades with seed VALIDATION_SEED + i, every epoch


def pixel_loss(kind: str, images: torch.Tensor, targets: torch.Tensor,
               region: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared (``mse``) or absolute (``l1``) difference over the pixels of ``region``
    (N, 1, H, W; 1 = counted), or over every pixel when ``region`` is None."""
    error = (images - targets) ** 2 if kind == "mse" else (images - targets).abs()
    if region is None:
        return error.mean()
    region = region.expand_as(error)
    return (error * region).sum() / region.sum().clamp_min(1)


class RestorationGAN(Restores, AdversarialModule):
    """Restore degraded images: ``loss = pixel + perceptual_weight * perceptual + adv_weight * adversarial``.

    Subclasses make the generator and define :meth:`degrade` (real images -> the generator's
    inputs and the region the pixel loss and the metrics count), :meth:`baseline` and
    :meth:`panels`. The pixel loss (``pixel_loss``: mse | l1) counts the region only; the
    perceptual loss compares whole images in the features of ``backbone`` at
    ``perceptual_layer`` (:class:`PerceptualFeatures`; kept out of the checkpoint, rebuilt
    from the config); the adversarial loss is ``loss`` (bce | hinge | lsgan) from a
    ``discriminator`` (``dcgan``: a conv classifier; ``backbone``: the backbone group's
    network + a logit head, its stages under ``freeze_plan``; it gets its own copy when the
    perceptual loss uses the same network) on whole images. The options every restoration GAN
    shares are this constructor's; a subclass takes its own (``kind_options``: SRGAN's scale,
    inpainting's masks), passes the rest on as ``**options`` and builds its generator in
    :meth:`build_generator`. All of them are saved as the checkpoint's hyperparameters.

    Every validation epoch logs ``val/psnr`` and ``val/ssim`` of the (EMA) generator and
    ``val/psnr_<baseline>``, ``val/ssim_<baseline>`` of the baseline on the same degraded
    images, and writes rows of :meth:`panels` for the first ``num_samples`` images.
    """

    baseline_name = ""
    panel_names: tuple[str, ...] = ()
    # What the scores measure, in their names: "" the whole image (val/psnr), "hole_" the filled
    # region alone (val/hole_psnr): metrics that mean different things never share a chart.
    region_name = ""

    capabilities = frozenset({"restore"})

    def __init__(self, optimizer: OptimizerFactory | None, kind_options: dict, /, *, image_size: int = 64,
                 channels: int = 3, g_width: int = 64, d_width: int = 64, discriminator: str = "dcgan",
                 loss: str = "bce", pixel_loss: str = "mse", perceptual_weight: float = 0.0,
                 perceptual_layer: str | None = None, adv_weight: float = 1e-3, g_lr: float = 1e-4,
                 d_lr: float = 1e-4, spectral_norm: bool = False, ema_decay: float = 0.0,
                 grad_clip: float | None = None, num_samples: int = 8, backbone: Backbone | None = None,
                 freeze_plan: FreezePlan | None = None) -> None:
        hparams = {**kind_options, **plain_arguments(locals())}
        super().__init__(optimizer, ema_decay)
        discriminator, perceptual_weight = hparams["discriminator"], hparams["perceptual_weight"]
        if discriminator not in DISCRIMINATORS:
            raise UserError(f"model.discriminator={discriminator!r} is not one of: "
                            f"{', '.join(DISCRIMINATORS)}")
        if hparams["pixel_loss"] not in PIXEL_LOSSES:
            raise UserError(f"model.pixel_loss={hparams['pixel_loss']!r} is not one of: "
                            f"{', '.join(PIXEL_LOSSES)}")
        self.adversarial_loss = gan_loss(hparams["loss"], adds_gradient_penalty=False, module=self.kind)
        if perceptual_weight < 0 or hparams["adv_weight"] < 0:
            raise UserError(f"model.perceptual_weight={perceptual_weight} and model.adv_weight="
                            f"{hparams['adv_weight']} must be >= 0")
        self.save_hyperparameters(hparams, logger=False)  # the run logs the whole config (visionlab.train)
        self.perceptual: PerceptualFeatures | None = None
        if perceptual_weight > 0:
            if backbone is None or not hparams["perceptual_layer"]:
                raise UserError("model.perceptual_weight > 0 needs a feature network (the backbone group, "
                                "e.g. backbone=shapes_net) and model.perceptual_layer (see `visionlab "
                                "stages NAME`)")
            source = copy.deepcopy(backbone) if uses_backbone(discriminator) else backbone
            # Not a registered submodule: a fixed measuring network, no part of the model's state.
            object.__setattr__(self, "perceptual", PerceptualFeatures(source, hparams["perceptual_layer"]))
        self.adopt_freeze_plan(discriminator, backbone, freeze_plan)
        size, channels = hparams["image_size"], hparams["channels"]
        self.generator = self.build_generator()
        self.discriminator = build_discriminator(discriminator, (channels, size, size), 0, hparams["d_width"],
                                                 hparams["spectral_norm"], backbone)
        self.init_ema()
        self.scores, self.baseline_scores = RestorationScores(), RestorationScores()
        self._panels: list[torch.Tensor] = []

    def build_generator(self) -> nn.Module:
        """The generator, from ``self.hparams`` (shared and kind options alike)."""
        raise NotImplementedError

    @classmethod
    def sampling_hparams(cls, hparams: dict) -> dict:
        """Restoring needs the generator alone: no perceptual network, a small stand-in discriminator."""
        return hparams | {"discriminator": "dcgan", "perceptual_weight": 0.0}

    @classmethod
    def needs_backbone(cls, model_cfg) -> bool:
        """A backbone discriminator or a perceptual loss needs the backbone group's network."""
        return uses_backbone(model_cfg.get("discriminator")) or model_cfg.get("perceptual_weight", 0) > 0

    def degrade(self, images: torch.Tensor, seed: int | None
                ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor | None]:
        """``(inputs, region)``: what the generator gets for real ``images`` and the pixels the
        loss and metrics count (None: all). ``seed`` fixes any randomness (None: the global RNG)."""
        raise NotImplementedError

    def baseline(self, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The untrained baseline's restoration of ``inputs``."""
        raise NotImplementedError

    def panels(self, inputs: tuple[torch.Tensor, ...], baseline: torch.Tensor, restored: torch.Tensor,
               real: torch.Tensor) -> list[torch.Tensor]:
        """The images of one validation row, all at the output size, in [-1, 1] (``panel_names``)."""
        raise NotImplementedError

    def judge(self, images: torch.Tensor, region: torch.Tensor | None) -> torch.Tensor:
        """The discriminator's logits for real or restored ``images`` (whole images; subclasses may
        show it less)."""
        return self.discriminator(images)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Restore ``inputs`` (as :meth:`degrade` makes them) with the (EMA) generator."""
        return self.sampling_generator(*inputs)

    def training_step(self, batch, batch_idx: int) -> None:
        """One discriminator update on real vs restored images, then one generator update."""
        real, _ = batch
        inputs, region = self.degrade(real, seed=None)
        g_opt, d_opt = self.optimizers()
        with torch.no_grad():
            fake = self.generator(*inputs)
        d_loss = self.adversarial_loss.discriminator(self.judge(real, region), self.judge(fake, region))
        self.update(d_opt, d_loss, self.discriminator, "discriminator")
        fake = self.generator(*inputs)
        losses = {"pixel_loss": pixel_loss(self.hparams.pixel_loss, fake, real, region),
                  "adv_loss": self.adversarial_loss.generator(self.judge(fake, region))}
        g_loss = losses["pixel_loss"] + self.hparams.adv_weight * losses["adv_loss"]
        if self.perceptual is not None:
            losses["perceptual_loss"] = self.perceptual.to(self.device).loss(fake, real)
            g_loss = g_loss + self.hparams.perceptual_weight * losses["perceptual_loss"]
        self.update(g_opt, g_loss, self.generator, "generator")
        self.update_ema()
        for name, value in {"d_loss": d_loss, "g_loss": g_loss, **losses}.items():
            self.log(f"train/{name}", value.detach(), on_step=False, on_epoch=True,
                     prog_bar=name in ("d_loss", "pixel_loss"), batch_size=len(real), sync_dist=True)

    def validation_step(self, batch, batch_idx: int) -> None:
        """Restore a seeded degradation of the batch; score it and the baseline against the originals."""
        real, _ = batch
        inputs, region = self.degrade(real, seed=VALIDATION_SEED + batch_idx)
        with self.sampling_mode() as generator:
            restored = generator(*inputs)
        baseline = self.baseline(inputs)
        self.scores.update(restored, real, region)
        self.baseline_scores.update(baseline, real, region)
        # The rows spread over the validation batches (they often come sorted by class).
        n = math.ceil(self.hparams.num_samples / max(1, self.trainer.num_val_batches[0]))
        if not self._panels or len(self._panels[0]) < self.hparams.num_samples:
            rows = self.panels(tuple(i[:n] for i in inputs), baseline[:n], restored[:n], real[:n])
            self._panels = ([torch.cat(pair) for pair in zip(self._panels, rows, strict=True)]
                            if self._panels else rows)

    def on_validation_epoch_end(self) -> None:
        """Log ``val/psnr``, ``val/ssim`` and the baseline's; write the rows of panels."""
        scores, baseline = self.scores.compute(), self.baseline_scores.compute()
        self.scores.reset()
        self.baseline_scores.reset()
        region = self.region_name
        self.log_dict({f"val/{region}{k}": v for k, v in scores.items()}, prog_bar=True)
        self.log_dict({f"val/{region}{k}_{self.baseline_name}": v for k, v in baseline.items()})
        if self._panels and not self.trainer.sanity_checking:
            panels = [p[:self.hparams.num_samples] for p in self._panels]
            rows = torch.stack(panels, dim=1).flatten(0, 1)  # sample by sample, panel by panel
            self.write_grid(rows, len(panels), "samples/" + "|".join(self.panel_names),
                            f"epoch_{self.current_epoch:03d}.png", column_names=self.panel_names)
        self._panels = []
