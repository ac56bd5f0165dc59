"""Generators and discriminators for the GAN module: a vanilla MLP pair, DCGAN, and any
backbone as the discriminator, pooled (``backbone``) or read at several scales (``projected``,
:mod:`visionlab.nets.projected`).

Every discriminator returns one logit per sample, ``(N,)``, from a :class:`LogitHead`, or, the
projected one, a logit per image patch and scale, ``(N, K)``: the losses average over them.
Conditional models (``num_classes > 0``) take class labels too: the generator concatenates
a learned label embedding to its noise vector, the discriminator adds a *projection* term,
the inner product of a label embedding with its penultimate features (Miyato & Koyama
2018), to its unconditional logit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from visionlab.errors import UserError
from visionlab.nets.backbone import Backbone
from visionlab.nets.backbone_input import BackboneInput
from visionlab.nets.projected import ProjectedDiscriminator
from visionlab.registry import Registry


def dcgan_start_size(image_size: int) -> int:
    """The smallest feature map of a DCGAN for ``image_size`` (where G starts and D ends): the size
    halved while it is even and at least 8 (64 -> 4, 28 -> 7, 96 -> 6), so any even size from
    8 px works; another is a UserError."""
    if image_size < 8 or image_size % 2:
        raise UserError(f"model.image_size={image_size}: the dcgan architecture makes even sizes of at "
                        "least 8 px (e.g. 28, 32, 64); use one of those (or the mlp)")
    start = image_size
    while start % 2 == 0 and start >= 8:
        start //= 2
    return start


def init_dcgan_weights(module: nn.Module) -> None:
    """Radford et al.'s initialisation: convolution and linear weights N(0, 0.02), BatchNorm N(1, 0.02)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(layer.weight, 0.0, 0.02)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d) and layer.affine:
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)


def _maybe_spectral(layer: nn.Module, spectral_norm: bool) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(layer) if spectral_norm else layer


class ConditionalInput(nn.Module):
    """Noise, or noise concatenated with a learned embedding of the label (conditional generators)."""

    def __init__(self, num_classes: int, embed_dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_classes, embed_dim) if num_classes else None
        self.extra = embed_dim if num_classes else 0

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """``z`` (N, latent), with the label embedding appended when conditional."""
        if self.embedding is None:
            return z
        return torch.cat([z, self.embedding(labels)], dim=1)


class Projection(nn.Module):
    """The projection discriminator's label term ``<embed(y), features>`` (zero when unconditional)."""

    def __init__(self, num_classes: int, width: int, spectral_norm: bool) -> None:
        super().__init__()
        embedding = nn.Embedding(num_classes, width) if num_classes else None
        if embedding is not None:  # N(0, 0.02) as D's other weights: N(0, 1) rows swamp the logit
            nn.init.normal_(embedding.weight, 0.0, 0.02)
        self.embedding = _maybe_spectral(embedding, spectral_norm) if embedding is not None else None

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | float:
        """``(N,)`` label scores for penultimate ``features`` (N, width)."""
        if self.embedding is None:
            return 0.0
        return (self.embedding(labels) * features).sum(dim=1)


class ClassBatchNorm2d(nn.Module):
    """BatchNorm whose scale and shift are looked up by class label (conditional BatchNorm, de Vries
    et al. 2017, as in BigGAN's generator): the class shapes every layer of the generator, not only
    its input. Scales start at N(1, 0.02) and shifts at 0, as DCGAN's BatchNorm."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.scale = nn.Embedding(num_classes, channels)
        self.shift = nn.Embedding(num_classes, channels)
        nn.init.normal_(self.scale.weight, 1.0, 0.02)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``x`` normalised, then scaled and shifted by each sample's class."""
        return self.norm(x) * self.scale(labels)[:, :, None, None] + self.shift(labels)[:, :, None, None]


def run_layers(layers: nn.Sequential, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """``layers`` in order, the class labels passed to the :class:`ClassBatchNorm2d` ones."""
    for layer in layers:
        x = layer(x, labels) if isinstance(layer, ClassBatchNorm2d) else layer(x)
    return x


class LogitHead(nn.Module):
    """A discriminator's last layer: one logit per sample from its penultimate features, plus
    the projection term when conditional. The part of a backbone discriminator that is always new.

    :meth:`add_classifier` gives it an auxiliary classifier on the same features (AC-GAN, Odena
    et al. 2017): every forward then also leaves the class logits in ``class_logits``."""

    def __init__(self, width: int, num_classes: int = 0, spectral_norm: bool = False) -> None:
        super().__init__()
        self.out = _maybe_spectral(nn.Linear(width, 1), spectral_norm)
        self.projection = Projection(num_classes, width, spectral_norm)
        self.classifier: nn.Module | None = None
        self.class_logits: torch.Tensor | None = None

    def add_classifier(self, num_classes: int) -> None:
        """An auxiliary classifier of ``num_classes`` on the head's input features."""
        self.classifier = nn.Linear(self.out.in_features, num_classes)

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(N,)`` for ``features`` ``(N, width)``: higher means "real"."""
        if self.classifier is not None:
            self.class_logits = self.classifier(features)
        return self.out(features).squeeze(1) + self.projection(features, labels)


class MLPGenerator(nn.Module):
    """The vanilla GAN generator: noise -> dense layers (LeakyReLU 0.2) -> Tanh -> one sample."""

    def __init__(self, latent_dim: int, sample_shape: Sequence[int], hidden: Sequence[int] = (256, 512),
                 num_classes: int = 0, embed_dim: int = 16) -> None:
        super().__init__()
        self.sample_shape = tuple(sample_shape)
        self.condition = ConditionalInput(num_classes, embed_dim)
        layers, width = [], latent_dim + self.condition.extra
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(0.2)]
            width = h
        layers += [nn.Linear(width, math.prod(self.sample_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Samples ``(N, *sample_shape)`` in [-1, 1]."""
        return self.net(self.condition(z, labels)).view(len(z), *self.sample_shape)


class MLPDiscriminator(nn.Module):
    """The vanilla GAN discriminator: flatten -> dense layers (LeakyReLU 0.2) -> one logit."""

    def __init__(self, sample_shape: Sequence[int], hidden: Sequence[int] = (512, 256), num_classes: int = 0,
                 spectral_norm: bool = False) -> None:
        super().__init__()
        layers, width = [nn.Flatten()], math.prod(sample_shape)
        for h in hidden:
            layers += [_maybe_spectral(nn.Linear(width, h), spectral_norm), nn.LeakyReLU(0.2)]
            width = h
        self.features = nn.Sequential(*layers)
        self.head = LogitHead(width, num_classes, spectral_norm)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(N,)``: higher means "real"."""
        return self.head(self.features(x), labels)


class DCGANGenerator(nn.Module):
    """DCGAN's generator: a dense projection to ``start x start`` maps, then stride-2 transposed
    convolutions that double the size, BatchNorm + ReLU between them, Tanh at the output.

    Conditional (``num_classes`` > 0): a label embedding joins the noise; with ``class_norm`` every
    BatchNorm also takes its scale and shift from the label (:class:`ClassBatchNorm2d`)."""

    def __init__(self, latent_dim: int, channels: int, image_size: int, width: int = 64,
                 num_classes: int = 0, embed_dim: int = 16, class_norm: bool = False) -> None:
        super().__init__()
        start = dcgan_start_size(image_size)
        ups = int(math.log2(image_size // start))
        self.condition = ConditionalInput(num_classes, embed_dim)

        def norm(ch: int) -> nn.Module:
            return ClassBatchNorm2d(ch, num_classes) if class_norm and num_classes else nn.BatchNorm2d(ch)

        top = width * 2 ** (ups - 1)
        self.project = nn.Sequential(
            nn.Linear(latent_dim + self.condition.extra, top * start * start, bias=False),
            nn.Unflatten(1, (top, start, start)), norm(top), nn.ReLU(True))
        layers, ch = [], top
        for i in range(ups):
            last = i == ups - 1
            out = channels if last else ch // 2
            layers.append(nn.ConvTranspose2d(ch, out, 4, 2, 1, bias=last))
            layers += [nn.Tanh()] if last else [norm(out), nn.ReLU(True)]
            ch = out
        self.net = nn.Sequential(*layers)
        init_dcgan_weights(self)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images ``(N, channels, image_size, image_size)`` in [-1, 1]."""
        return run_layers(self.net, run_layers(self.project, self.condition(z, labels), labels), labels)


class DCGANDiscriminator(nn.Module):
    """DCGAN's discriminator: stride-2 convolutions with LeakyReLU 0.2 (BatchNorm on all but the
    input layer) down to ``start x start``, then one logit per image."""

    def __init__(self, channels: int, image_size: int, width: int = 64, num_classes: int = 0,
                 spectral_norm: bool = False) -> None:
        super().__init__()
        start = dcgan_start_size(image_size)
        downs = int(math.log2(image_size // start))
        layers, ch = [], channels
        for i in range(downs):
            out = width * 2**i
            layers.append(_maybe_spectral(nn.Conv2d(ch, out, 4, 2, 1, bias=i == 0), spectral_norm))
            if i > 0 and not spectral_norm:  # spectral norm replaces BatchNorm's role in D
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.LeakyReLU(0.2, True))
            ch = out
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = LogitHead(ch * start * start, num_classes, spectral_norm)
        init_dcgan_weights(self)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(N,)``: higher means "real"."""
        return self.head(self.features(x), labels)


class BackboneDiscriminator(nn.Module):
    """Any visionlab backbone as the discriminator: its pooled features -> :class:`LogitHead`.

    With a pretrained backbone the discriminator judges samples in a feature space that
    already knows what real images look like (the idea of Projected GANs, Sauer et al. 2021);
    the ``freeze`` group's plan decides which of its stages train. The generator's [-1, 1]
    images are mapped to the backbone's own input (:class:`BackboneInput`), differentiably.
    Spectral normalisation, when asked for, applies to the new head only.
    """

    def __init__(self, backbone: Backbone, num_classes: int = 0, spectral_norm: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.input = BackboneInput(backbone.data_config)
        self.head = LogitHead(int(backbone.num_features), num_classes, spectral_norm)

    def front(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone's pooled features of images ``x`` in [-1, 1]: what :attr:`head` judges."""
        return self.backbone(self.input(x * 0.5 + 0.5))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(N,)`` for images ``x`` in [-1, 1]: higher means "real"."""
        return self.head(self.front(x), labels)


@dataclass(frozen=True)
class GANNetwork:
    """A registered generator or discriminator: its builder, whether it needs square images and
    whether it is made of the ``backbone`` group's network (then the ``freeze`` group's plan
    decides which of its stages train)."""

    build: Callable[..., nn.Module]
    square_images: bool = False
    uses_backbone: bool = False


# ``model.generator`` / ``model.discriminator`` names, registered by definition below: a new
# architecture is one decorated builder (see the README's "Adding a model kind").
GENERATORS: Registry[GANNetwork] = Registry("GAN generator")
DISCRIMINATORS: Registry[GANNetwork] = Registry("GAN discriminator")


def register_network(registry: Registry[GANNetwork], name: str, square_images: bool = False,
                     uses_backbone: bool = False):
    """Decorator: the builder is ``registry``'s network ``name``. Generators are built as
    ``build(latent_dim, sample_shape, num_classes, width)``; discriminators as
    ``build(sample_shape, num_classes, width, spectral_norm, backbone)``."""
    def add(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        registry.register(name)(GANNetwork(build, square_images, uses_backbone))
        return build

    return add


@register_network(GENERATORS, "mlp")
def mlp_generator(latent_dim, sample_shape, num_classes, width):
    """The vanilla GAN's MLP generator (any sample shape)."""
    return MLPGenerator(latent_dim, sample_shape, num_classes=num_classes)


@register_network(GENERATORS, "dcgan", square_images=True)
def dcgan_generator(latent_dim, sample_shape, num_classes, width):
    """Radford et al.'s transposed-convolution generator."""
    return DCGANGenerator(latent_dim, sample_shape[0], sample_shape[1], width, num_classes)


@register_network(GENERATORS, "dcgan_cbn", square_images=True)
def dcgan_class_norm_generator(latent_dim, sample_shape, num_classes, width):
    """DCGAN's generator with class-conditional BatchNorm (conditional models; else plain ``dcgan``)."""
    return DCGANGenerator(latent_dim, sample_shape[0], sample_shape[1], width, num_classes, class_norm=True)


@register_network(DISCRIMINATORS, "mlp")
def mlp_discriminator(sample_shape, num_classes, width, spectral_norm, backbone):
    """The vanilla GAN's MLP discriminator (any sample shape)."""
    return MLPDiscriminator(sample_shape, num_classes=num_classes, spectral_norm=spectral_norm)


@register_network(DISCRIMINATORS, "dcgan", square_images=True)
def dcgan_discriminator(sample_shape, num_classes, width, spectral_norm, backbone):
    """Radford et al.'s strided-convolution discriminator."""
    return DCGANDiscriminator(sample_shape[0], sample_shape[1], width, num_classes, spectral_norm)


def _require_backbone(name: str, backbone: Backbone | None) -> Backbone:
    if backbone is None:
        raise UserError(f"model.discriminator={name} needs a network from the backbone group "
                        "(e.g. backbone=shapes_net)")
    return backbone


@register_network(DISCRIMINATORS, "backbone", square_images=True, uses_backbone=True)
def backbone_discriminator(sample_shape, num_classes, width, spectral_norm, backbone):
    """The ``backbone`` group's network plus a logit head on its pooled features."""
    return BackboneDiscriminator(_require_backbone("backbone", backbone), num_classes, spectral_norm)


@register_network(DISCRIMINATORS, "projected", square_images=True, uses_backbone=True)
def projected_discriminator(sample_shape, num_classes, width, spectral_norm, backbone):
    """The ``backbone`` group's network read at several stages, randomly mixed, a small D per scale."""
    return ProjectedDiscriminator(_require_backbone("projected", backbone), width, num_classes, spectral_norm)


def uses_backbone(discriminator: str | None) -> bool:
    """Whether ``model.discriminator`` names a discriminator made of the backbone group's network
    (False for an unknown name: building it reports that)."""
    return discriminator in DISCRIMINATORS and DISCRIMINATORS[discriminator].uses_backbone


def check_square(name: str, network: GANNetwork, sample_shape: tuple) -> None:
    """A UserError when ``network`` needs square images and the samples are not."""
    square = len(sample_shape) == 3 and sample_shape[1] == sample_shape[2]
    if network.square_images and not square:
        raise UserError(f"the {name} architecture takes square images, not samples of shape {sample_shape}: "
                        "use model.generator=mlp model.discriminator=mlp")


def build_gan_nets(generator: str, discriminator: str, latent_dim: int, sample_shape: Sequence[int],
                   num_classes: int = 0, width: int = 64, spectral_norm: bool = False,
                   backbone: Backbone | None = None, pack: int = 1) -> tuple[nn.Module, nn.Module]:
    """The generator and discriminator named by ``model.generator`` / ``model.discriminator``;
    ``backbone`` is the network of a discriminator that :func:`uses_backbone`. With ``pack`` > 1 the
    discriminator takes ``pack`` images stacked along the channels (PacGAN)."""
    sample_shape = tuple(sample_shape)
    g_net = GENERATORS.lookup(generator, "model.generator")
    d_net = DISCRIMINATORS.lookup(discriminator, "model.discriminator")
    for name, network in ((generator, g_net), (discriminator, d_net)):
        check_square(name, network, sample_shape)
    if pack > 1 and d_net.uses_backbone:
        raise UserError(f"model.pack={pack} stacks {pack} images along the channels, which the pretrained "
                        f"network of model.discriminator={discriminator} cannot take: set model.pack=1 or "
                        "use model.discriminator=dcgan")
    d_shape = (sample_shape[0] * pack, *sample_shape[1:])
    return (g_net.build(latent_dim, sample_shape, num_classes, width),
            build_discriminator(discriminator, d_shape, num_classes, width, spectral_norm, backbone))


def build_discriminator(name: str, sample_shape: Sequence[int], num_classes: int = 0, width: int = 64,
                        spectral_norm: bool = False, backbone: Backbone | None = None) -> nn.Module:
    """The discriminator ``model.discriminator`` names for samples of ``sample_shape``; ``backbone``
    is the network of one that :func:`uses_backbone`."""
    network = DISCRIMINATORS.lookup(name, "model.discriminator")
    return network.build(tuple(sample_shape), num_classes, width, spectral_norm, backbone)
