"""A model kind, a backbone family and a backbone source defined outside visionlab, as a user would
add them: one definition each in one file (plus the config, which the tests compose). They train through
``visionlab.train.run`` and sample through ``visionlab sample`` with no change to either: the build
protocol and the registries find them."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from visionlab.data_config import DataConfig
from visionlab.downloads import RemoteFile
from visionlab.errors import UserError
from visionlab.modules.adversarial import AdversarialModule, OptimizerFactory
from visionlab.modules.base import register_kind
from visionlab.modules.capabilities import Draws
from visionlab.modules.gan_losses import gan_loss
from visionlab.nets.backbone import Backbone
from visionlab.nets.custom import CUSTOM_BACKBONES, sequential_backbone
from visionlab.nets.sources import BackboneSource, register_source


@register_kind
class ToyGAN(Draws, AdversarialModule):
    """A linear generator against a linear discriminator on small gray images."""

    kind = "toy_gan"
    capabilities = frozenset({"draw"})
    sample_options = ("n",)

    def __init__(self, optimizer: OptimizerFactory | None = None, image_size: int = 8, channels: int = 1,
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


@CUSTOM_BACKBONES.register("toy_cnn")
def toy_cnn(in_chans: int = 3, input_size: int = 32) -> Backbone:
    """A backbone family of one's own: two conv blocks (``backbone.source=custom
    backbone.name=toy_kind.toy_cnn`` imports this module, whose decorator registers it)."""
    blocks = OrderedDict(
        block1=nn.Sequential(OrderedDict(conv=nn.Conv2d(in_chans, 8, 3, padding=1), act=nn.ReLU())),
        block2=nn.Sequential(OrderedDict(conv=nn.Conv2d(8, 16, 3, stride=2, padding=1), act=nn.ReLU())),
    )
    stats = (0.5,) * in_chans
    return sequential_backbone(blocks, name="toy_cnn", num_features=16,
                               data_config=DataConfig(in_chans, input_size, stats, stats))


@register_source("toy_hub")
class ToyHub(BackboneSource):
    """A backbone source of one's own (``backbone.source=toy_kind.toy_hub`` imports this module): one
    model, ``tiny``, whose "published" weights are a file it names."""

    def knows(self, name: str) -> bool:
        return name == "tiny"

    def names(self) -> list[str]:
        return ["tiny"]

    def build(self, name: str, pretrained: bool, in_chans: int, input_size: int | None, **kwargs) -> Backbone:
        if pretrained:
            raise UserError("toy_hub publishes no weights here")
        return toy_cnn(in_chans, input_size or 32)

    def files(self, name: str) -> list[RemoteFile]:
        return [RemoteFile("toy_hub weights of tiny", "https://example.org/tiny.safetensors",
                           Path("/nowhere"), lambda: None, lambda: None)]
