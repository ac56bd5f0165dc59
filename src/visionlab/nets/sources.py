"""Where backbones come from (``backbone.source``): a registry of sources, filled by definition.

A source answers four questions: does it know a model name, what are the names it knows (for
suggestions), how is a model built as a :class:`~visionlab.nets.backbone.Backbone`, and which
files does a pretrained one download. ``timm``, ``torchvision`` and ``custom`` are defined here; a
source of one's own is one decorated class in any module (``backbone.source=mypackage.hub.my_hub``
imports it), and :func:`~visionlab.nets.factory.create_backbone`, ``visionlab prefetch`` and
``visionlab stages`` use it with no other change. Heavy imports (timm, torchvision) happen inside
the methods, so reading a config stays quick.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from visionlab.downloads import RemoteFile
from visionlab.errors import UserError
from visionlab.nets.backbone import Backbone
from visionlab.registry import Registry

ASSETS = Path(__file__).resolve().parent.parent / "assets"


class BackboneSource:
    """A library (or registry) of feature networks; subclasses answer for their own."""

    # Whether its models take timm's ``drop_path_rate`` (stochastic depth).
    stochastic_depth = False

    def knows(self, name: str) -> bool:
        """Whether ``name`` is a model of this source."""
        raise NotImplementedError

    def names(self) -> Iterable[str]:
        """Every model name it knows (the suggestions for a misspelt one)."""
        raise NotImplementedError

    def build(self, name: str, pretrained: bool, in_chans: int, input_size: int | None, **kwargs) -> Backbone:
        """The model ``name`` as a Backbone, with its published weights when ``pretrained``."""
        raise NotImplementedError

    def files(self, name: str) -> list[RemoteFile]:
        """What building ``name`` with ``pretrained`` downloads (nothing by default)."""
        return []


BACKBONE_SOURCES: Registry[BackboneSource] = Registry("backbone source")


def register_source(name: str):
    """Class decorator: an instance of the class is the backbone source ``name``."""
    def add(cls: type[BackboneSource]) -> type[BackboneSource]:
        BACKBONE_SOURCES.register(name)(cls())
        return cls

    return add


@register_source("timm")
class TimmSource(BackboneSource):
    """Any timm model, its stages from timm's ``group_matcher``; published weights from the hub."""

    stochastic_depth = True

    def knows(self, name: str) -> bool:
        import timm

        return timm.is_model(name)

    def names(self) -> Iterable[str]:
        import timm

        return timm.list_models()

    def build(self, name: str, pretrained: bool, in_chans: int, input_size: int | None, **kwargs) -> Backbone:
        from visionlab.nets.timm_backbone import timm_backbone

        return timm_backbone(name, pretrained=pretrained, in_chans=in_chans, input_size=input_size, **kwargs)

    def files(self, name: str) -> list[RemoteFile]:
        from visionlab.nets.hub import timm_weights

        found = timm_weights(name)
        return [found] if found is not None else []


@register_source("torchvision")
class TorchvisionSource(BackboneSource):
    """torchvision's classification models, their stages named by hand; weights into torch.hub's cache."""

    def knows(self, name: str) -> bool:
        return name in self.names()

    def names(self) -> Iterable[str]:
        import torchvision

        return torchvision.models.list_models()

    def build(self, name: str, pretrained: bool, in_chans: int, input_size: int | None, **kwargs) -> Backbone:
        from visionlab.nets.torchvision_backbone import torchvision_backbone

        return torchvision_backbone(name, pretrained=pretrained, in_chans=in_chans, input_size=input_size,
                                    **kwargs)

    def files(self, name: str) -> list[RemoteFile]:
        from visionlab.nets.hub import torchvision_weights

        return [torchvision_weights(name)]


@register_source("custom")
class CustomSource(BackboneSource):
    """The small CNNs of :mod:`visionlab.nets.custom` (and a user's, by dotted name); ``pretrained``
    loads the weights shipped in the package (shapes_net)."""

    shipped = {"shapes_net": ASSETS / "shapes_net.safetensors"}

    def knows(self, name: str) -> bool:
        from visionlab.nets.custom import CUSTOM_BACKBONES

        return name in CUSTOM_BACKBONES or "." in name

    def names(self) -> Iterable[str]:
        from visionlab.nets.custom import CUSTOM_BACKBONES

        return list(CUSTOM_BACKBONES)

    def build(self, name: str, pretrained: bool, in_chans: int, input_size: int | None, **kwargs) -> Backbone:
        from visionlab.nets.custom import CUSTOM_BACKBONES

        build = CUSTOM_BACKBONES.lookup(name, "backbone.name")
        if pretrained and name not in self.shipped:
            raise UserError(f"backbone '{name}' has no published weights: set backbone.pretrained=false "
                            "or backbone.weights=<file>")
        size_kw = {} if input_size is None else {"input_size": input_size}
        backbone = build(in_chans=in_chans, **size_kw, **kwargs)
        if pretrained:
            path = self.shipped[name]
            if not path.is_file():
                raise UserError(f"shipped {name} weights are missing at {path}; run `python train.py "
                                "experiment=pretrain_shapes` and copy its backbone.safetensors there, or set "
                                "backbone.pretrained=false")
            from visionlab.nets.weights import load_backbone_weights

            load_backbone_weights(backbone, path)
        return backbone
