"""A model kind defined outside visionlab, as a user would add one: one class in one file (plus its
config, which the test composes). It trains through ``visionlab.train.run`` and samples through
``visionlab sample`` with no change to either: the build protocol and the kind registry find it."""

from __future__ import annotations

import torch
from torch import nn

from visionlab.modules.adversarial import AdversarialModule, OptimizerFactory
from visionlab.modules.base import register_kind
from visionlab.modules.gan_losses import gan_loss


@register_kind
class ToyGAN(AdversarialModule):
    """A linear generator against a linear discriminator on small gray images."""

    kind = "toy_gan"
    sample_options = ("n",)

    def __init__(self, optimizer: OptimizerFactory, image_size: int = 8, channels: int = 1,
                 latent_dim: int = 4, loss: str = "bce", g_lr: float = 1e-3, d_lr: float = 1e-3,
                 ema_decay: float = 0.0, grad_clip: float | None = None) -> None:
        super().__init__(optimizer, ema_decay)
        self.adversarial_loss = gan_loss(loss, adds_gradient_penalty=False, module=self.kind)
        self.save_hyperparameters({"image_size": image_size, "channels": channels, "latent_dim": latent_dim,
                                   "loss": loss, "g_lr": g_lr, "d_lr": d_lr, "ema_decay": ema_decay,
                                   "grad_clip": grad_clip}, logger=False)
        pixels = channels * image_size * image_size
        self.generator = nn.Sequential(nn.Linear(latent_dim, pixels), nn.Tanh(),
                                       nn.Unflatten(1, (channels, image_size, image_size)))
        self.discriminator = nn.Sequential(nn.Flatten(), nn.Linear(pixels, 1))
        self.init_ema()

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [-1, 1] for noise ``z``."""
        return self.sampling_generator(z)

    def training_step(self, batch, batch_idx: int) -> None:
        """One discriminator update, then one generator update."""
        real, _ = batch
        g_opt, d_opt = self.optimizers()
        z = torch.randn(len(real), self.hparams.latent_dim, device=self.device)
        d_loss = self.adversarial_loss.discriminator(self.discriminator(real),
                                                     self.discriminator(self.generator(z).detach()))
        self.update(d_opt, d_loss, self.discriminator, "discriminator")
        g_loss = self.adversarial_loss.generator(self.discriminator(self.generator(z)))
        self.update(g_opt, g_loss, self.generator, "generator")
        self.log("train/g_loss", g_loss.detach(), on_epoch=True, on_step=False)
