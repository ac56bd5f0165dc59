"""``create_backbone``: the one entry point that builds a Backbone from config values; and
``build_backbone`` / ``backbone_from_recipe``: a backbone group entry built, and rebuilt from what a
checkpoint recorded of it."""

from __future__ import annotations

import logging
from pathlib import Path

from visionlab.downloads import RemoteFile
from visionlab.errors import UserError, closest
from visionlab.nets.backbone import Backbone
from visionlab.nets.custom import CUSTOM_BACKBONES

log = logging.getLogger(__name__)

SOURCES = ("timm", "torchvision", "custom")
ASSETS = Path(__file__).resolve().parent.parent / "assets"
SHIPPED_WEIGHTS = {"shapes_net": ASSETS / "shapes_net.safetensors"}


def create_backbone(
    name: str,
    source: str = "timm",
    pretrained: bool = False,
    weights: str | None = None,
    in_chans: int = 3,
    input_size: int | None = None,
    drop_path_rate: float | None = None,
    **kwargs,
) -> Backbone:
    """Build backbone ``name`` from ``source`` and optionally load weights.

    ``pretrained`` fetches the library's published weights (hub cache; needs network the
    first time); for the custom ``shapes_net`` it loads the weights shipped in the package.
    ``weights`` loads a local file instead, and then nothing is downloaded. ``input_size``
    overrides the size the model expects (``None``: the model's default). Extra keyword
    arguments go to the model constructor (e.g. ``batchnorm`` for ``chollet_cnn``).
    ``drop_path_rate`` is stochastic depth (timm's argument: residual branches dropped at random
    in training, at rates rising to this value in the last block), for timm models that have it.
    """
    if drop_path_rate is not None:
        if not 0.0 <= drop_path_rate < 1.0:
            raise UserError(f"backbone.drop_path_rate={drop_path_rate} must be in [0, 1)")
        if source != "timm":
            raise UserError(f"backbone.drop_path_rate: {source} backbone '{name}' has no stochastic depth; "
                            "timm models with residual blocks do (backbone=timm backbone.name=resnet18, "
                            "convnext_atto, vit_tiny_patch16_224...)")
        kwargs["drop_path_rate"] = drop_path_rate
    if source not in SOURCES:
        raise UserError(f"backbone.source='{source}' is not one of: {', '.join(SOURCES)}")
    if pretrained and weights is not None:
        log.info("backbone.weights is set: loading %s instead of the published weights", weights)
        pretrained = False
    if source == "custom":
        backbone = _custom_backbone(name, pretrained, in_chans, input_size, kwargs)
    else:
        _check_known(name, source)
        if source == "timm":
            from visionlab.nets.timm_backbone import timm_backbone as build
        else:
            from visionlab.nets.torchvision_backbone import torchvision_backbone as build
        backbone = build(
            name, pretrained=pretrained, in_chans=in_chans, input_size=input_size, **kwargs
        )
    if weights is not None:
        from visionlab.nets.weights import load_backbone_weights

        load_backbone_weights(backbone, weights)
    return backbone


def build_backbone(config, load_weights: bool = True) -> Backbone:
    """The backbone the ``backbone`` group's entry ``config`` builds (with the weights it names, unless
    not ``load_weights``), holding that entry as its ``recipe`` (resolved, with no weights to load)
    so that a checkpoint can rebuild the architecture without the config and the published weights."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    recipe = OmegaConf.to_container(config, resolve=True) if OmegaConf.is_config(config) else dict(config)
    recipe |= {key: value for key, value in (("pretrained", False), ("weights", None)) if key in recipe}
    backbone = instantiate(config if load_weights else recipe)
    backbone.recipe = recipe
    return backbone


def backbone_from_recipe(recipe: dict, truncate_after: str | None = None) -> Backbone:
    """The architecture ``recipe`` (:func:`build_backbone`) describes, cut after ``truncate_after``
    as the trained one was, with initial weights (a checkpoint's are loaded into it)."""
    from hydra.utils import instantiate

    backbone = instantiate(recipe)
    backbone.recipe = dict(recipe)
    if truncate_after is not None:
        backbone.truncate(truncate_after)
    return backbone


def backbone_files(name: str, source: str = "timm", pretrained: bool = False, weights: str | None = None,
                   **unused) -> list[RemoteFile]:
    """What :func:`create_backbone` with these values downloads (see :mod:`visionlab.downloads`):
    nothing unless it is a timm or torchvision model with ``pretrained`` and no local ``weights``;
    a UserError for a name the source does not know, as when building it."""
    if source not in SOURCES:
        raise UserError(f"backbone.source='{source}' is not one of: {', '.join(SOURCES)}")
    if source == "custom" or not pretrained or weights is not None:
        return []
    _check_known(name, source)
    from visionlab.nets.hub import timm_weights, torchvision_weights

    if source == "torchvision":
        return [torchvision_weights(name)]
    found = timm_weights(name)
    return [found] if found is not None else []


def _custom_backbone(
    name: str, pretrained: bool, in_chans: int, input_size: int | None, kwargs: dict
) -> Backbone:
    """A net from :mod:`visionlab.nets.custom`, with its shipped weights if ``pretrained``."""
    build = CUSTOM_BACKBONES.lookup(name, "backbone.name")
    if pretrained and name not in SHIPPED_WEIGHTS:
        raise UserError(
            f"backbone '{name}' has no published weights: set backbone.pretrained=false "
            "or backbone.weights=<file>"
        )
    size_kw = {} if input_size is None else {"input_size": input_size}
    backbone = build(in_chans=in_chans, **size_kw, **kwargs)
    if pretrained:
        path = SHIPPED_WEIGHTS[name]
        if not path.is_file():
            raise UserError(
                f"shipped {name} weights are missing at {path}; run `python train.py "
                f"experiment=pretrain_shapes` and copy its backbone.safetensors there, or set "
                "backbone.pretrained=false"
            )
        from visionlab.nets.weights import load_backbone_weights

        load_backbone_weights(backbone, path)
    return backbone


def _check_known(name: str, source: str) -> None:
    """UserError for a name ``source`` does not know: the right source, or close names."""
    import timm
    import torchvision

    known = {"timm": timm.is_model(name), "torchvision": name in torchvision.models.list_models()}
    if known[source]:
        return
    other = "torchvision" if source == "timm" else "timm"
    if known[other]:
        raise UserError(
            f"'{name}' is not a {source} model but a {other} one: set backbone.source={other}"
        )
    candidates = closest(name, dict.fromkeys(timm.list_models() + torchvision.models.list_models()))
    hint = f"did you mean: {', '.join(candidates)}" if candidates else "no similar names"
    raise UserError(f"unknown {source} backbone '{name}'; {hint}")
