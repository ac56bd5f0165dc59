"""The GAN LightningModule: a generator and a discriminator trained with manual optimization."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

from visionlab.errors import UserError
from visionlab.finetune.plans import FreezePlan
from visionlab.modules.adversarial import OptimizerFactory
from visionlab.modules.base import register_kind
from visionlab.modules.diffaugment import diff_augment
from visionlab.modules.gan_losses import gradient_penalty, r1_penalty
from visionlab.modules.noise_gan import NoiseGAN
from visionlab.modules.speed_options import compile_backend
from visionlab.nets.backbone import Backbone
from visionlab.nets.gan import LogitHead, build_gan_nets, uses_backbone


def detached(features: torch.Tensor | list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
    """A discriminator front's features (a tensor, or a projected discriminator's list of maps),
    cut from the graph that made them."""
    return [f.detach() for f in features] if isinstance(features, list) else features.detach()


@contextlib.contextmanager
def parameters_frozen(network: torch.nn.Module) -> Iterator[None]:
    """``network``'s parameters require no gradient inside the block (gradients still flow through it
    to its input), then each is as it was: the freeze plan's choices are kept."""
    params = [p for p in network.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


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
        reuse_fakes: bool = True,
        channels_last: bool = False,
        compile: bool | str = False,
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
               "label_smoothing": label_smoothing, "pack": pack, "d_backbone": d_backbone,
               "reuse_fakes": reuse_fakes, "channels_last": channels_last, "compile": compile}
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
        self.apply_speed_options(channels_last, compile)

    def apply_speed_options(self, channels_last: bool, compile: bool | str) -> None:
        """GPU speed options, off by default: ``channels_last`` (NHWC networks and batches; images
        only) and ``compile`` (``torch.compile`` of the generator and of the discriminator's trained
        part, its head when it has a feature network: the frozen front runs eagerly). Modules are
        compiled in place, so checkpoints keep the same keys; the EMA copy, which only draws
        samples, stays eager."""
        if channels_last:
            if len(self.hparams.sample_shape) != 3:
                raise UserError(f"model.channels_last=true lays out images, not samples of shape "
                                f"{tuple(self.hparams.sample_shape)}: set model.channels_last=false")
            self.generator.to(memory_format=torch.channels_last)
            self.discriminator.to(memory_format=torch.channels_last)
        backend = compile_backend(compile)
        if backend is not None:
            self.generator.compile(backend=backend)
            trained = self.discriminator.head if hasattr(self.discriminator, "front") else self.discriminator
            trained.compile(backend=backend)

    def sample_latent(self, n: int) -> torch.Tensor:
        """``n`` noise vectors on the module's device."""
        return torch.randn(n, self.hparams.latent_dim, device=self.device)

    @classmethod
    def sampling_hparams(cls, hparams: dict) -> dict:
        """Sampling needs the generator alone: a small stand-in replaces a backbone discriminator, and
        nothing is compiled (a compiled run's checkpoint would otherwise compile again to draw)."""
        hparams.pop("d_backbone", None)
        return hparams | {"discriminator": "mlp", "compile": False}

    def fake_images(self, n: int, labels: torch.Tensor | None) -> torch.Tensor:
        """``n`` images (samples) in [-1, 1] from the EMA generator, for fresh noise (the metrics')."""
        return self(self.sample_latent(n), labels)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Samples from the generator (its EMA copy when there is one) for noise ``z``."""
        return self.sampling_generator(z, labels if self.conditional else None)

    def discriminator_input(self, samples: torch.Tensor) -> torch.Tensor:
        """``samples`` as the discriminator takes them: after the differentiable augmentation
        ``diffaugment`` when one is configured; with ``pack`` > 1, in groups of ``pack`` samples
        stacked along the channels (a remainder is left out)."""
        if self.hparams.diffaugment:
            samples = diff_augment(samples, self.hparams.diffaugment)
        pack = self.hparams.get("pack", 1)
        if pack > 1:
            groups = len(samples) // pack
            if not groups:
                raise UserError(f"a batch of {len(samples)} samples is smaller than model.pack={pack}: raise "
                                "data.batch_size or lower model.pack")
            samples = samples[:groups * pack].reshape(groups, pack * samples.shape[1], *samples.shape[2:])
        return samples

    def judge(self, samples: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The discriminator's logits for ``samples`` (real or generated), as it takes them
        (:meth:`discriminator_input`)."""
        return self.discriminator(self.discriminator_input(samples), labels)

    def frozen_front(self):
        """The discriminator's feature network as a function of images, when none of its parameters
        trains at this point of the freeze plan (a backbone or projected discriminator under
        ``freeze=feature_extraction``), else None. Its features of an image are then the same
        before and after the discriminator's update, so a step computes them once."""
        front = getattr(self.discriminator, "front", None)
        if front is None or any(p.requires_grad for p in self.discriminator.backbone.parameters()):
            return None
        return front

    def training_step(self, batch, batch_idx: int) -> None:
        """``d_steps`` discriminator updates on this real batch, then one generator update.

        With ``reuse_fakes`` (the default, as PyTorch's DCGAN example does) the last discriminator
        update's generated batch, augmented once, also serves the generator's update, so G runs
        forward once per step; and a frozen feature network inside D (:meth:`frozen_front`) sees
        each real and generated image once per step, D's trained head judging its features twice
        (before and after D's update). ``reuse_fakes=false`` draws a fresh batch for G's update and
        runs all of D on it. In both, D's parameters build no graph during G's update.
        """
        real, labels = batch
        labels = labels if self.conditional else None
        g_opt, d_opt = self.optimizers()
        h, objective, n = self.hparams, self.adversarial_loss, len(real)
        if h.channels_last and real.dim() == 4:
            real = real.contiguous(memory_format=torch.channels_last)
        front = self.frozen_front() if h.pack == 1 else None
        features = front or (lambda x: x)
        head = self.discriminator.head if front else self.discriminator
        for step in range(h.d_steps):
            shared = h.reuse_fakes and step == h.d_steps - 1
            with torch.set_grad_enabled(shared):  # the fakes' graph is kept only for G's update
                fake = self.generator(self.sample_latent(n), labels)
                fake_seen = features(self.discriminator_input(fake))
            seen = real.detach().requires_grad_(True) if h.r1_weight else real
            with torch.set_grad_enabled(bool(h.r1_weight) or not front):
                real_seen = features(self.discriminator_input(seen))
            d_real = head(real_seen, labels)
            real_classes = self.class_logits()
            d_fake = head(detached(fake_seen), labels)
            d_loss = objective.discriminator(d_real, d_fake, 1.0 - h.label_smoothing)
            if objective.needs_gradient_penalty:
                d_loss = d_loss + h.gp_weight * gradient_penalty(
                    lambda x: self.discriminator(x, labels), real, fake.detach())
            if h.r1_weight:
                d_loss = d_loss + h.r1_weight * r1_penalty(d_real, seen)
            if real_classes is not None:  # AC-GAN: D learns to classify the real images...
                d_loss = d_loss + h.class_loss_weight * F.cross_entropy(real_classes, labels)
            self.update(d_opt, d_loss, self.discriminator, "discriminator")
        with parameters_frozen(self.discriminator):
            if shared:
                d_judged = head(fake_seen, labels)
            else:
                d_judged = self.judge(self.generator(self.sample_latent(n), labels), labels)
            g_loss = objective.generator(d_judged)
            fake_classes = self.class_logits()
            if fake_classes is not None:  # ... and G to draw images it classifies as the class asked for
                g_loss = g_loss + h.class_loss_weight * F.cross_entropy(fake_classes, labels)
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
