"""``create_backbone``: the one entry point that builds a Backbone from config values, through the
source the config names (:mod:`visionlab.nets.sources`); and
``build_backbone`` / ``backbone_from_recipe``: a backbone group entry built, and rebuilt from what a
checkpoint recorded of it."""

from __future__ import annotations

import logging

from visionlab.downloads import RemoteFile
from visionlab.errors import UserError, closest
from visionlab.nets.backbone import Backbone
from visionlab.nets.sources import BACKBONE_SOURCES, BackboneSource

log = logging.getLogger(__name__)


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
    """Build backbone ``name`` from ``source`` (one of :data:`~visionlab.nets.sources.BACKBONE_SOURCES`,
    or a dotted name that imports a source of one's own) and optionally load weights.

    ``pretrained`` loads the source's published weights (timm, torchvision: the hub cache, which
    needs the network the first time; custom ``shapes_net``: the weights shipped in the package).
    ``weights`` loads a local file instead, and then nothing is downloaded. ``input_size``
    overrides the size the model expects (``None``: the model's default). Extra keyword
    arguments go to the model constructor (e.g. ``batchnorm`` for ``chollet_cnn``).
    ``drop_path_rate`` is stochastic depth (timm's argument: residual branches dropped at random
    in training, at rates rising to this value in the last block), for sources that have it.
    """
    origin = known_source(name, source)
    if drop_path_rate is not None:
        if not 0.0 <= drop_path_rate < 1.0:
            raise UserError(f"backbone.drop_path_rate={drop_path_rate} must be in [0, 1)")
        if not origin.stochastic_depth:
            raise UserError(f"backbone.drop_path_rate: {source} backbone '{name}' has no stochastic depth; "
                            "timm models with residual blocks do (backbone=timm backbone.name=resnet18, "
                            "convnext_atto, vit_tiny_patch16_224...)")
        kwargs["drop_path_rate"] = drop_path_rate
    if pretrained and weights is not None:
        log.info("backbone.weights is set: loading %s instead of the published weights", weights)
        pretrained = False
    backbone = origin.build(name, pretrained, in_chans, input_size, **kwargs)
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
    nothing unless ``pretrained`` and no local ``weights``, else what the source says; a UserError
    for a name the source does not know, as when building it."""
    origin = known_source(name, source)
    if not pretrained or weights is not None:
        return []
    return origin.files(name)


def known_source(name: str, source: str) -> BackboneSource:
    """The source ``source``, which knows ``name``; else a UserError naming the source that does, or
    close names."""
    origin = BACKBONE_SOURCES.lookup(source, "backbone.source")
    if origin.knows(name):
        return origin
    others = [other for other, candidate in BACKBONE_SOURCES.items()
              if other != source and candidate.knows(name)]
    if others:
        raise UserError(f"'{name}' is not a {source} model but a {others[0]} one: "
                        f"set backbone.source={others[0]}")
    names = dict.fromkeys(n for candidate in BACKBONE_SOURCES.values() for n in candidate.names())
    candidates = closest(name, names)
    hint = f"did you mean: {', '.join(candidates)}" if candidates else "no similar names"
    raise UserError(f"unknown {source} backbone '{name}'; {hint}")
