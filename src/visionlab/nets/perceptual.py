"""Perceptual (feature) loss: the distance between two images in a frozen network's feature space
at a named layer (Johnson et al. 2016; SRGAN's "VGG loss", Ledig et al. 2017)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from visionlab.errors import UserError
from visionlab.nets.backbone import Backbone
from visionlab.nets.backbone_input import BackboneInput


def layer_names(backbone: Backbone) -> list[str]:
    """Every name a layer of ``backbone`` answers to: its coarse and fine stages and its aliases
    (``visionlab stages NAME --granularity fine`` prints them)."""
    names = [s.name for s in backbone.stages("coarse")] + [s.name for s in backbone.stages("fine")]
    return list(dict.fromkeys(names + list(backbone.layer_aliases)))


class PerceptualFeatures(nn.Module):
    """``backbone``'s features at ``layer`` (a stage name or alias, e.g. ``block5_conv4`` of vgg19,
    ``block4`` of shapes_net), for images in [-1, 1] of any size and 1 or 3 channels.

    The backbone is cut after that layer (:meth:`Backbone.truncate`), frozen and kept in eval
    mode: a fixed measuring instrument whose gradient still flows back to the images.
    """

    def __init__(self, backbone: Backbone, layer: str) -> None:
        super().__init__()
        names = layer_names(backbone)
        if layer not in names:
            raise UserError(f"model.perceptual_layer={layer!r} is not a layer of {backbone.name}; its "
                            f"layers: {', '.join(names)}")
        backbone.truncate(backbone.layer_aliases.get(layer, layer))
        self.backbone = backbone.eval().requires_grad_(False)
        self.input = BackboneInput(backbone.data_config)

    def train(self, mode: bool = True) -> PerceptualFeatures:
        """Always evaluation mode."""
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The feature map of ``images`` (N, C, H, W) in [-1, 1] at the layer."""
        return self.backbone.forward_features(self.input(images * 0.5 + 0.5))

    def loss(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean squared distance between the features of ``images`` and of ``targets`` (no
        gradient through the targets): 0 for identical images."""
        with torch.no_grad():
            target_features = self(targets)
        return F.mse_loss(self(images), target_features)
