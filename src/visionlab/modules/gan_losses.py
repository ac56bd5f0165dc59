"""GAN losses on discriminator logits: bce (non-saturating), hinge, lsgan, wgan_gp.

Each loss is a pair of functions of the discriminator's logits on real and generated
samples; ``real_target`` < 1 is one-sided label smoothing (only the real targets move).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from visionlab.errors import UserError

LOSSES = ("bce", "hinge", "lsgan", "wgan_gp")


def check_loss(name: str) -> str:
    """``name`` if it is a known loss, else a UserError listing them."""
    if name not in LOSSES:
        raise UserError(f"model.loss={name!r} is not one of: {', '.join(LOSSES)}")
    return name


def discriminator_loss(name: str, real: torch.Tensor, fake: torch.Tensor,
                       real_target: float = 1.0) -> torch.Tensor:
    """The discriminator's loss for logits on real and on generated samples.

    bce: ``-log σ(real) - log(1 - σ(fake))`` (real target ``real_target``); hinge:
    ``relu(1 - real) + relu(1 + fake)``; lsgan: ``(real - real_target)² + fake²``, halved;
    wgan_gp: ``fake - real`` (the gradient penalty is added separately).
    """
    if name == "bce":
        return (F.binary_cross_entropy_with_logits(real, torch.full_like(real, real_target))
                + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    if name == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if name == "lsgan":
        return 0.5 * ((real - real_target) ** 2).mean() + 0.5 * (fake**2).mean()
    return fake.mean() - real.mean()


def generator_loss(name: str, fake: torch.Tensor) -> torch.Tensor:
    """The generator's loss for the discriminator's logits on its samples.

    bce: non-saturating ``-log σ(fake)``; hinge and wgan_gp: ``-fake``; lsgan: ``(fake - 1)²``, halved.
    """
    if name == "bce":
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    if name == "lsgan":
        return 0.5 * ((fake - 1) ** 2).mean()
    return -fake.mean()


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
                     fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP's penalty ``E[(‖∇ critic(x̂)‖₂ - 1)²]`` at random interpolates x̂ of real and fake samples."""
    mix = torch.rand(len(real), *[1] * (real.dim() - 1), device=real.device, dtype=real.dtype)
    interpolates = (mix * real + (1 - mix) * fake).requires_grad_(True)
    (gradients,) = torch.autograd.grad(critic(interpolates).sum(), interpolates, create_graph=True)
    return ((gradients.flatten(1).norm(dim=1) - 1) ** 2).mean()
