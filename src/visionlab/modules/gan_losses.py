"""GAN losses on discriminator logits, as objects that say what they need: bce (non-saturating),
hinge, lsgan, wgan_gp.

Each loss gives the discriminator's loss for logits on real and generated samples and the
generator's for logits on its samples; ``real_target`` < 1 is one-sided label smoothing (only the
real targets move). A loss that needs a gradient penalty (``needs_gradient_penalty``: wgan_gp) is
only accepted by a module that adds one (:func:`gan_loss`), so no module takes a loss it cannot
compute. Losses register by definition (:func:`register_loss`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F

from visionlab.errors import UserError
from visionlab.registry import Registry

LOSSES: Registry[type[GANLoss]] = Registry("GAN loss")


def register_loss(cls: type[GANLoss]) -> type[GANLoss]:
    """Class decorator: ``model.loss=<cls.name>`` selects ``cls``."""
    return LOSSES.register(cls.name)(cls)


class GANLoss:
    """A GAN objective: :meth:`discriminator` and :meth:`generator` losses on logits."""

    name: ClassVar[str] = ""
    needs_gradient_penalty: ClassVar[bool] = False  # the module must add gradient_penalty() to D's loss

    def discriminator(self, real: torch.Tensor, fake: torch.Tensor, real_target: float = 1.0) -> torch.Tensor:
        """D's loss for its logits on real and on generated samples."""
        raise NotImplementedError

    def generator(self, fake: torch.Tensor) -> torch.Tensor:
        """G's loss for D's logits on generated samples."""
        raise NotImplementedError


@register_loss
class BCELoss(GANLoss):
    """``-log σ(real) - log(1 - σ(fake))`` (real target ``real_target``); G: non-saturating
    ``-log σ(fake)``."""

    name = "bce"

    def discriminator(self, real, fake, real_target=1.0):
        return (F.binary_cross_entropy_with_logits(real, torch.full_like(real, real_target))
                + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))

    def generator(self, fake):
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


@register_loss
class HingeLoss(GANLoss):
    """``relu(1 - real) + relu(1 + fake)``; G: ``-fake``."""

    name = "hinge"

    def discriminator(self, real, fake, real_target=1.0):
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()

    def generator(self, fake):
        return -fake.mean()


@register_loss
class LSGANLoss(GANLoss):
    """``(real - real_target)² + fake²``, halved; G: ``(fake - 1)²``, halved."""

    name = "lsgan"

    def discriminator(self, real, fake, real_target=1.0):
        return 0.5 * ((real - real_target) ** 2).mean() + 0.5 * (fake**2).mean()

    def generator(self, fake):
        return 0.5 * ((fake - 1) ** 2).mean()


@register_loss
class WGANGPLoss(GANLoss):
    """The critic's ``fake - real`` (the module adds :func:`gradient_penalty`); G: ``-fake``."""

    name = "wgan_gp"
    needs_gradient_penalty = True

    def discriminator(self, real, fake, real_target=1.0):
        return fake.mean() - real.mean()

    def generator(self, fake):
        return -fake.mean()


def gan_loss(name: str, adds_gradient_penalty: bool, module: str) -> GANLoss:
    """The loss ``model.loss=name`` for the ``module`` kind; a UserError for an unknown name, or for a
    loss that needs a gradient penalty when the module does not add one."""
    loss = LOSSES.lookup(name, "model.loss")()
    if loss.needs_gradient_penalty and not adds_gradient_penalty:
        usable = [n for n, cls in LOSSES.items() if not cls.needs_gradient_penalty]
        raise UserError(f"model.loss={name} needs a gradient penalty, which model={module} does not add: use "
                        f"one of {', '.join(usable)}")
    return loss


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                     fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP's penalty ``E[(‖∇ critic(x̂)‖₂ - 1)²]`` at random interpolates x̂ of real and fake samples."""
    mix = torch.rand(len(real), *[1] * (real.dim() - 1), device=real.device, dtype=real.dtype)
    interpolates = (mix * real + (1 - mix) * fake).requires_grad_(True)
    (gradients,) = torch.autograd.grad(critic(interpolates).sum(), interpolates, create_graph=True)
    return ((gradients.flatten(1).norm(dim=1) - 1) ** 2).mean()


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): ``E[‖∇ₓ D(x)‖₂²] / 2`` at the real samples ``real`` (which must
    require grad) from D's logits on them, so the D forward is shared with its loss. It keeps the
    discriminator from growing steep around the data, where the generator's gradient comes from;
    any loss takes it."""
    (gradients,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return 0.5 * gradients.flatten(1).pow(2).sum(dim=1).mean()
