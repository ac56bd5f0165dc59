"""The projected discriminator (Sauer et al., "Projected GANs Converge Faster", NeurIPS 2021):
a pretrained backbone read at several stages, its feature maps mixed by fixed random
projections, and a small discriminator per scale.

A single pooled feature vector (:class:`~visionlab.nets.gan.BackboneDiscriminator`) is a weak
discriminator: it throws away where things are and which low-level features fired. The
projected discriminator keeps them:

1. :class:`StageFeatures` reads the backbone's output at the last stage of each resolution
   (up to four, deepest first), in one forward pass.
2. :class:`RandomMixing` mixes channels (a random 1x1 convolution per scale, CCM) and scales
   (each deeper mixed map upsampled, projected and added to the shallower one, CSM). Its
   weights are drawn once from a fixed seed and never trained: they spread every feature over
   every channel so that a discriminator cannot ignore most of them.
3. A :class:`ScaleDiscriminator` per scale, strided convolutions down to 4x4 and one logit per
   patch; the logits of all scales together are the discriminator's output ``(N, K)`` (the
   losses average over them).

The ``freeze`` group's plan still decides which backbone stages train (Projected GANs keep the
whole feature network frozen: ``freeze=feature_extraction``); the scale discriminators are
``head``, which always trains.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from visionlab.errors import UserError
from visionlab.nets.backbone import Backbone, Stage
from visionlab.nets.backbone_input import BackboneInput
from visionlab.nets.probe import eval_mode

MAX_SCALES = 4
MIXING_SEED = 0  # the random projections are the same in every run (and every DDP rank)


class StageFeatures(nn.Module):
    """The feature maps a backbone computes at the end of some of its stages, in one forward pass.

    The stages read are the last (coarse) stage at each spatial resolution, at most
    ``MAX_SCALES`` of them counting from the deepest; stages whose output is not a feature map
    ``(N, C, H, W)`` (a ViT's tokens) are not candidates. ``channels`` and ``sizes`` describe
    the maps, input side first. The maps are caught by forward hooks that exist only during
    :meth:`forward`, so copies of the backbone (``copy.deepcopy``) carry none.
    """

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.backbone = backbone
        self.input = BackboneInput(backbone.data_config)
        dc = backbone.data_config
        example = torch.zeros(1, dc.in_chans, dc.input_size, dc.input_size)
        candidates = {s.name: _last_module(backbone, s) for s in backbone.stages("coarse")}
        with eval_mode(backbone), torch.no_grad():
            maps = self._read(example, {name: module for name, module in candidates.items() if module})
        by_size: dict[tuple[int, int], str] = {}
        for name, feature in maps.items():  # input side first: the last stage at a size wins
            if _is_square_map(feature):
                by_size[tuple(feature.shape[-2:])] = name
        chosen = list(by_size.values())[-MAX_SCALES:]
        if not chosen:
            raise UserError(f"model.discriminator=projected reads feature maps (N, C, H, W), and no stage "
                            f"of {backbone.name} gives one (a transformer's tokens): use a convolutional "
                            "backbone (e.g. backbone=shapes_net, backbone=resnet18) or "
                            "model.discriminator=backbone")
        self.stage_names = chosen
        self._taps = {name: candidates[name] for name in chosen}  # stage name -> the module read
        self.channels = [int(maps[n].shape[1]) for n in chosen]
        self.sizes = [tuple(maps[n].shape[-2:]) for n in chosen]

    def _read(self, x: torch.Tensor, taps: dict[str, str]) -> dict[str, torch.Tensor]:
        """For the backbone input ``x``, the output of each module of ``taps`` (stage name -> the
        qualified name of its last module), by stage name."""
        caught: dict[str, torch.Tensor] = {}
        with contextlib.ExitStack() as hooks:
            for stage, module_name in taps.items():
                handle = self.backbone.body.get_submodule(module_name).register_forward_hook(
                    lambda _m, _args, out, stage=stage: caught.__setitem__(stage, out))
                hooks.callback(handle.remove)
            self.backbone.forward_features(x)
        return caught

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The chosen stages' maps, input side first, for ``images`` in [-1, 1] (the generator's range)."""
        maps = self._read(self.input(images * 0.5 + 0.5), self._taps)
        return [maps[n] for n in self.stage_names]


def _is_square_map(feature) -> bool:
    """Whether a stage's output (for a square input) is a feature map ``(N, C, H, H)``: not tokens
    ``(N, L, C)``, not a channels-last map ``(N, H, W, C)`` (a timm ViT's patch embedding), not a tuple."""
    return isinstance(feature, torch.Tensor) and feature.ndim == 4 and feature.shape[-1] == feature.shape[-2]


def _last_module(backbone: Backbone, stage: Stage) -> str | None:
    """The qualified name of ``stage``'s last submodule entry (bare parameters are not modules)."""
    for entry in reversed(stage.modules):
        with contextlib.suppress(AttributeError):
            backbone.body.get_submodule(entry)
            return entry
    return None


class RandomMixing(nn.Module):
    """Fixed random cross-channel (CCM) and cross-scale (CSM) mixing of multi-scale feature maps.

    Every scale keeps its width. Scale ``i``'s output is its channel-mixed map plus a random
    1x1 projection of scale ``i + 1``'s output, upsampled (bilinear) to scale ``i``'s size, so
    every output also sees the deeper scales. The weights are Kaiming-normal from
    ``MIXING_SEED`` and never trained (``requires_grad`` False; they are in the checkpoint).
    """

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(MIXING_SEED)
            self.channel_mix = nn.ModuleList(nn.Conv2d(c, c, 1, bias=False) for c in channels)
            self.scale_mix = nn.ModuleList(nn.Conv2d(deeper, c, 1, bias=False)
                                           for c, deeper in zip(channels[:-1], channels[1:], strict=True))
            for conv in [*self.channel_mix, *self.scale_mix]:
                nn.init.kaiming_normal_(conv.weight, nonlinearity="linear")
        self.requires_grad_(False)

    def forward(self, maps: list[torch.Tensor]) -> list[torch.Tensor]:
        """The mixed maps, input side first, at the sizes and widths of ``maps``."""
        mixed = [mix(m) for mix, m in zip(self.channel_mix, maps, strict=True)]
        out = mixed[-1:]
        for i in reversed(range(len(mixed) - 1)):
            deeper = F.interpolate(out[0], size=mixed[i].shape[-2:], mode="bilinear", align_corners=False)
            out.insert(0, mixed[i] + self.scale_mix[i](deeper))
        return out


class ScaleDiscriminator(nn.Module):
    """One scale's discriminator: stride-2 4x4 convolutions (BatchNorm, LeakyReLU 0.2) until the map
    is at most 4x4 (a 3x3 one on a map that small already), then a logit per position (a patch of
    the image), plus, when conditional, the projection term ``<embed(y), features>`` at every
    position (Miyato & Koyama 2018)."""

    def __init__(self, channels: int, size: int, width: int, num_classes: int = 0,
                 spectral_norm: bool = False) -> None:
        super().__init__()
        norm = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda layer: layer)
        layers, ch, block = [], channels, 0
        while size > 4 or block == 0:  # at least one convolution, stride 1 on a map of 4x4 or less
            out, stride = width * 2**block, 2 if size > 4 else 1
            layers.append(norm(nn.Conv2d(ch, out, 4 if stride == 2 else 3, stride, 1, bias=spectral_norm)))
            layers += [] if spectral_norm else [nn.BatchNorm2d(out)]  # spectral norm replaces BatchNorm
            layers.append(nn.LeakyReLU(0.2, True))
            ch, size, block = out, size // stride, block + 1
        self.features = nn.Sequential(*layers)
        self.out = norm(nn.Conv2d(ch, 1, 1))
        self.embedding = nn.Embedding(num_classes, ch) if num_classes else None
        if self.embedding is not None:
            nn.init.normal_(self.embedding.weight, 0.0, 0.02)
            self.embedding = norm(self.embedding)

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Patch logits ``(N, P)`` for one scale's mixed ``features``."""
        h = self.features(features)
        logits = self.out(h).flatten(1)
        if self.embedding is not None and labels is not None:
            logits = logits + (self.embedding(labels)[:, :, None, None] * h).sum(1).flatten(1)
        return logits


class ProjectedHead(nn.Module):
    """What a projected discriminator adds to its backbone: the random mixing and a discriminator
    per scale (the ``head`` of the freeze plan's parameter groups)."""

    def __init__(self, channels: list[int], sizes: list[tuple[int, int]], width: int, num_classes: int,
                 spectral_norm: bool) -> None:
        super().__init__()
        self.mixing = RandomMixing(channels)
        self.scales = nn.ModuleList(ScaleDiscriminator(c, min(s), width, num_classes, spectral_norm)
                                    for c, s in zip(channels, sizes, strict=True))

    def forward(self, maps: list[torch.Tensor], labels: torch.Tensor | None) -> torch.Tensor:
        """All scales' patch logits, concatenated: ``(N, K)``."""
        mixed = self.mixing(maps)
        return torch.cat([d(m, labels) for d, m in zip(self.scales, mixed, strict=True)], dim=1)


class ProjectedDiscriminator(nn.Module):
    """A backbone read at several scales, fixed random mixing, a small discriminator per scale.

    ``backbone`` is the ``backbone`` group's network (its stages frozen or trained by the
    ``freeze`` plan, as for :class:`~visionlab.nets.gan.BackboneDiscriminator`); ``width`` is the
    first convolution's width in each scale discriminator. Images in [-1, 1] are mapped to the
    backbone's input differentiably, so the generator learns through the frozen network.
    """

    def __init__(self, backbone: Backbone, width: int = 64, num_classes: int = 0,
                 spectral_norm: bool = False) -> None:
        super().__init__()
        self.features = StageFeatures(backbone)
        features = self.features
        self.head = ProjectedHead(features.channels, features.sizes, width, num_classes, spectral_norm)

    @property
    def backbone(self) -> Backbone:
        """The feature network (what the freeze plan acts on)."""
        return self.features.backbone

    def front(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The backbone's maps at the chosen stages for images ``x`` in [-1, 1]: what :attr:`head` judges."""
        return self.features(x)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Patch logits ``(N, K)`` over all scales for images ``x`` in [-1, 1]: higher means "real"."""
        return self.head(self.front(x), labels)
