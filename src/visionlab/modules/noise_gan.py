"""What the GANs that draw images from noise (:class:`~visionlab.modules.gan.GANModule`,
:class:`~visionlab.modules.lapgan.LAPGANModule`) share: one declared set of settings, checked once
and saved as the checkpoint's hyperparameters beside each kind's own, FID validation, and drawing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from visionlab.modules.adversarial import (
    AdversarialModule,
    OptimizerFactory,
    check_conditional,
    plain_arguments,
)
from visionlab.modules.capabilities import Draws
from visionlab.modules.diffaugment import check_policies
from visionlab.modules.fid_validation import FIDValidation, check_class_metrics
from visionlab.modules.gan_losses import gan_loss


class NoiseGAN(Draws, FIDValidation, AdversarialModule):
    """A generator of ``channels x image_size x image_size`` images from ``latent_dim`` noise (class
    conditional with ``conditional``: one of ``num_classes`` named ``class_names``), ``width`` wide,
    trained with ``loss`` at ``g_lr`` / ``d_lr``, spectral norm in D if asked, DiffAugment
    (``diffaugment``), an EMA generator (``ema_decay``), gradient clipping (``grad_clip``); grids of
    ``num_samples`` fixed-noise images; FID, KID and the class metrics every ``fid_every`` epochs in
    the space of ``fid_features`` (:class:`FIDValidation`).

    These are this constructor's keyword arguments; a kind takes its own (``kind_options``: GAN's
    architectures and penalties, LAPGAN's pyramid), passes the rest on as ``**options`` with its
    :data:`DEFAULTS` where they differ, and reads every setting from ``self.hparams`` afterwards.
    """

    capabilities = frozenset({"draw"})
    sample_options = ("n", "label", "per_class")
    # Whether the kind adds a gradient penalty (for loss=wgan_gp); the defaults that differ from these.
    adds_gradient_penalty: ClassVar[bool] = False
    DEFAULTS: ClassVar[dict] = {}

    def __init__(self, optimizer: OptimizerFactory | None, kind_options: dict, /, *, image_size: int = 32,
                 channels: int = 3, num_classes: int = 0, class_names: Sequence[str] | None = None,
                 latent_dim: int = 64, width: int = 64, conditional: bool = False, loss: str = "bce",
                 g_lr: float = 2e-4, d_lr: float = 2e-4, spectral_norm: bool = False,
                 diffaugment: Sequence[str] = (), ema_decay: float = 0.0, grad_clip: float | None = None,
                 num_samples: int = 64, fid_every: int = 0, fid_features: str = "shapes_net",
                 class_metrics: bool | str = "auto", eval_classifier: str | None = None) -> None:
        settings = plain_arguments(locals())
        super().__init__(optimizer, ema_decay)
        check_conditional(conditional, num_classes)
        self.adversarial_loss = gan_loss(loss, adds_gradient_penalty=self.adds_gradient_penalty,
                                         module=self.kind)
        settings |= {"class_names": list(class_names or [str(i) for i in range(num_classes)]),
                     "diffaugment": check_policies(diffaugment),
                     "class_metrics": check_class_metrics(class_metrics, num_classes, eval_classifier)}
        self.save_hyperparameters({**settings, **kind_options}, logger=False)  # the run logs its config

    @property
    def classes(self) -> int:
        """The classes the generator and discriminator are conditioned on (0: unconditional)."""
        return self.hparams.num_classes if self.conditional else 0
