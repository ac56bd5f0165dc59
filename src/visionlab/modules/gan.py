"""The GAN LightningModule: a generator and a discriminator trained with manual optimization."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from visionlab.errors import UserError
from visionlab.finetune.plans import FreezePlan
from visionlab.modules.adversarial import OptimizerFactory
from visionlab.modules.base import register_kind
from visionlab.modules.diffaugment import diff_augment
from visionlab.modules.gan_losses import gradient_penalty, r1_penalty
from visionlab.modules.noise_gan import NoiseGAN
from visionlab.nets.backbone import Backbone
from visionlab.nets.gan import LogitHead, build_gan_nets, uses_backbone


def check_pack(pack: int, conditional: bool, sample_shape: tuple) -> None:
    """A UserError when ``model.pack`` cannot apply: below 1, on a conditional model (a pack mixes
    classes), or on samples that are not images."""
    if pack < 1:
        raise UserError(f"model.pack={pack} must be >= 1 (1: the discriminator judges one image at a time)")
    if pack > 1 and conditional:
        raise UserError(f"model.pack={pack} judges groups of samples, which a conditional model's per-sample "
                        "labels do not fit: set model.pack=1 or model.conditional=false")
    if pack > 1 and len(sample_shape) != 3:
        raise UserError(f"model.pack={pack} stacks images along their channels, not samples of shape "
                        f"{sample_shape}: set model.pack=1")


@register_kind
class GANModule(NoiseGAN):
    """Vanilla GAN / DCGAN / conditional GAN, trained one batch at a time as the course teaches:
    ``d_steps`` discriminator updates, then one generator update.

    Samples are ``channels x image_size x image_size`` images in [-1, 1] (``sample_shape``
    overrides that, e.g. ``(2,)`` for points). ``optimizer`` is a partially applied optimizer
    class (the ``optimizer`` config group); the generator and the discriminator each get one,
    at ``g_lr`` and ``d_lr`` (two time-scale updates when they differ). Gradients go through
    ``manual_backward`` (so mixed precision works) and are clipped to ``grad_clip`` inside the
    module. ``diffaugment`` (e.g. ``["color", "translation", "cutout"]``) augments every image
    the discriminator judges, real or generated, differentiably
    (:mod:`~visionlab.modules.diffaugment`), so that it cannot memorise a small training set.
    ``ema_decay`` > 0 keeps an exponential moving average of the generator
    (``generator_ema``), used for the sample grids. The fixed noise of those grids is a
    buffer, so it is in every checkpoint with both optimizers' states; checkpoints hold plain
    hyperparameters only (``weights_only=True``). :class:`~visionlab.modules.noise_gan.NoiseGAN`
    declares the settings the GAN shares with LAPGAN; :class:`AdversarialModule` what every
    adversarial module shares.

    Every ``fid_every`` epochs (0: never) the validation images and as many generated ones give
    ``val/fid`` and ``val/kid`` in the feature space of ``fid_features`` (see
    :mod:`visionlab.metrics.generative`; not comparable with published Inception FIDs).

    ``discriminator="backbone"``: D is ``backbone`` (a :class:`Backbone`, e.g. the pretrained
    ``shapes_net``) plus a new logit head, and ``freeze_plan`` decides which of its stages
    train, epoch by epoch (:class:`~visionlab.finetune.callback.FreezeScheduleCallback` reads
    ``self.freeze_plan`` and ``self.backbone`` as it does for the classifier).

    Step axis: Lightning's ``global_step`` (and so ``trainer.max_steps``) counts every
    optimizer step, ``d_steps + 1`` per batch; the step metrics are logged at (TensorBoard's
    x-axis, the CSV's ``step``) counts batches, i.e. generator steps.
    """

    kind = "gan"
    legacy_hparams = frozenset({"latent_dim", "generator"})
    adds_gradient_penalty = True

    def __init__(
        self,
        optimizer: OptimizerFactory | None = None,
        generator: str = "dcgan",
        discriminator: str = "dcgan",
        d_steps: int = 1,
        gp_weight: float = 10.0,
        r1_weight: float = 0.0,
        class_loss_weight: float = 0.0,
        label_smoothing: float = 0.0,
        sample_shape: Sequence[int] | None = None,
        pack: int = 1,
        backbone: Backbone | None = None,
        freeze_plan: FreezePlan | None = None,
        **options,
    ) -> None:
        """GAN's own settings (architectures, ``d_steps``, penalties, label smoothing, PacGAN packing,
        the sample shape of non-image data); ``options`` are those every noise GAN shares
        (:class:`~visionlab.modules.noise_gan.NoiseGAN`: image size, classes, latent size, width,
        loss, learning rates, EMA, DiffAugment, FID...)."""
        d_backbone = ({"name": backbone.name, "source": backbone.source}  # informative: the D's network
                      if uses_backbone(discriminator) and backbone is not None else None)
        own = {"generator": generator, "discriminator": discriminator, "d_steps": d_steps,
               "gp_weight": gp_weight, "r1_weight": r1_weight, "class_loss_weight": class_loss_weight,
               "label_smoothing": label_smoothing, "pack": pack, "d_backbone": d_backbone}
        super().__init__(optimizer, own, **options)
        h = self.hparams
        shape = tuple(sample_shape) if sample_shape else (h.channels, h.image_size, h.image_size)
        h.sample_shape = list(shape)
        if d_steps < 1:
            raise UserError(f"model.d_steps={d_steps} must be >= 1")
        if h.diffaugment and len(shape) != 3:
            raise UserError(f"model.diffaugment augments images, not samples of shape {shape}: "
                            "set model.diffaugment=[]")
        if r1_weight < 0:
            raise UserError(f"model.r1_weight={r1_weight} must be >= 0 (0: no R1 penalty)")
        check_pack(pack, h.conditional, shape)
        if class_loss_weight < 0 or (class_loss_weight and not h.conditional):
            raise UserError(f"model.class_loss_weight={class_loss_weight}: the auxiliary classifier's weight "
                            "must be >= 0 and needs labels (model.conditional=true)")
        if not 0.0 <= label_smoothing < 0.5:
            raise UserError(f"model.label_smoothing={label_smoothing} must be in [0, 0.5)")
        self.adopt_freeze_plan(discriminator, backbone, freeze_plan)
        self.generator, self.discriminator = build_gan_nets(
            generator, discriminator, h.latent_dim, shape, self.classes, h.width, h.spectral_norm, backbone,
            pack)
        if class_loss_weight:
            head = getattr(self.discriminator, "head", None)
            if not isinstance(head, LogitHead):
                raise UserError("model.class_loss_weight needs a discriminator with one logit head (dcgan, "
                                f"mlp, backbone), not model.discriminator={discriminator}: set it to 0")
            head.add_classifier(h.num_classes)
        self.init_ema()
        self.register_fixed_noise(h.num_samples, h.latent_dim, self.classes)

    def sample_latent(self, n: int) -> torch.Tensor:
        """``n`` noise vectors on the module's device."""
        return torch.randn(n, self.hparams.latent_dim, device=self.device)

    @classmethod
    def sampling_hparams(cls, hparams: dict) -> dict:
        """Sampling needs the generator alone: a small stand-in replaces a backbone discriminator."""
        hparams.pop("d_backbone", None)
        return hparams | {"discriminator": "mlp"}

    def fake_images(self, n: int, labels: torch.Tensor | None) -> torch.Tensor:
        """``n`` images (samples) in [-1, 1] from the EMA generator, for fresh noise (the metrics')."""
        return self(self.sample_latent(n), labels)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Samples from the generator (its EMA copy when there is one) for noise ``z``."""
        return self.sampling_generator(z, labels if self.conditional else None)

    def judge(self, samples: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The discriminator's logits for ``samples`` (real or generated), after the
        differentiable augmentation ``diffaugment`` when one is configured; with ``pack`` > 1, for
        groups of ``pack`` samples stacked along the channels (a remainder is left out)."""
        if self.hparams.diffaugment:
            samples = diff_augment(samples, self.hparams.diffaugment)
        pack = self.hparams.get("pack", 1)
        if pack > 1:
            groups = len(samples) // pack
            if not groups:
                raise UserError(f"a batch of {len(samples)} samples is smaller than model.pack={pack}: raise "
                                "data.batch_size or lower model.pack")
            samples = samples[:groups * pack].reshape(groups, pack * samples.shape[1], *samples.shape[2:])
        return self.discriminator(samples, labels)

    def training_step(self, batch, batch_idx: int) -> None:
        """``d_steps`` discriminator updates on this real batch, then one generator update."""
        real, labels = batch
        labels = labels if self.conditional else None
        g_opt, d_opt = self.optimizers()
        objective, n = self.adversarial_loss, len(real)
        for _ in range(self.hparams.d_steps):
            with torch.no_grad():
                fake = self.generator(self.sample_latent(n), labels)
            seen = real.detach().requires_grad_(True) if self.hparams.r1_weight else real
            d_real = self.judge(seen, labels)
            real_classes = self.class_logits()
            d_fake = self.judge(fake, labels)
            d_loss = objective.discriminator(d_real, d_fake, 1.0 - self.hparams.label_smoothing)
            if objective.needs_gradient_penalty:
                d_loss = d_loss + self.hparams.gp_weight * gradient_penalty(
                    lambda x: self.discriminator(x, labels), real, fake)
            if self.hparams.r1_weight:
                d_loss = d_loss + self.hparams.r1_weight * r1_penalty(d_real, seen)
            if real_classes is not None:  # AC-GAN: D learns to classify the real images...
                d_loss = d_loss + self.hparams.class_loss_weight * F.cross_entropy(real_classes, labels)
            self.update(d_opt, d_loss, self.discriminator, "discriminator")
        fake = self.generator(self.sample_latent(n), labels)
        g_loss = objective.generator(self.judge(fake, labels))
        fake_classes = self.class_logits()
        if fake_classes is not None:  # ... and G to draw images it classifies as the class asked for
            g_loss = g_loss + self.hparams.class_loss_weight * F.cross_entropy(fake_classes, labels)
        self.update(g_opt, g_loss, self.generator, "generator")
        self.update_ema()
        for name, value in (("d_loss", d_loss), ("g_loss", g_loss), ("d_real", d_real.mean()),
                            ("d_fake", d_fake.mean())):
            self.log(f"train/{name}", value.detach(), on_step=False, on_epoch=True,
                     prog_bar=name.endswith("loss"), batch_size=n, sync_dist=True)

    def class_logits(self) -> torch.Tensor | None:
        """The auxiliary classifier's logits for the batch D judged last (``model.class_loss_weight``
        > 0), else None."""
        return self.discriminator.head.class_logits if self.hparams.get("class_loss_weight") else None

    def on_train_epoch_end(self) -> None:
        """Draw the fixed noise through the (EMA) generator: a grid in TensorBoard and ``samples/``."""
        if len(self.hparams.sample_shape) != 3:
            return
        with self.sampling_mode() as generator:
            images = generator(self.fixed_noise, self.fixed_labels)
        self.write_grid(images, self.grid_columns, "samples/fixed_noise",
                        f"epoch_{self.current_epoch:03d}.png")
