"""timm models as Backbones.

Any timm model is created without its classifier (``num_classes=0``) and used through
``model.forward_features``, which returns the unpooled map ``(N, C, H, W)`` or the tokens
``(N, L, C)``. Head-side modules that ``forward_features`` never uses but that still hold
parameters after ``num_classes=0`` (VGG's ``pre_logits`` ConvMlp with its 7x7 conv to 4096
channels, MobileNetV3's ``conv_head`` after the pooling) are replaced by ``nn.Identity``:
a backbone that gets a new head should end at its last feature map, and dead parameters
would waste memory (120 M of VGG16's 138 M) and confuse DDP. The pruning is found by
tracing one forward pass, so it needs no per-family list. A random VGG is traced on the meta
device, so its pruned part never gets memory or an initialisation.

Stages come from the model's own ``group_matcher`` (models without one, such as the
MetaFormers, are cut at the modules their ``feature_info`` lists): ``coarse=True`` gives the natural
blocks (``layer3``, ``blocks.11``), ``coarse=False`` the finer ones (``layer3.1``,
``blocks.5.2``). A stage is named after its single module, or ``stem`` for a multi-module
first group (``conv1`` + ``bn1``), or else after its first module. VGG is the exception:
timm groups it per conv for both granularities, so it uses the Keras-style blocks of
:func:`visionlab.nets.vgg.vgg_stages` (``block1``..``block5`` coarse,
``features.N`` fine, aliases ``block5_conv1`` -> ``features.24``).
"""

from __future__ import annotations

import contextlib

import timm
import torch
from timm.models import group_parameters
from torch import nn

from visionlab.data_config import DataConfig, fit_stats
from visionlab.errors import UserError
from visionlab.nets.backbone import Backbone, Stage
from visionlab.nets.hub import download_failure_message
from visionlab.nets.probe import eval_mode, probe_features
from visionlab.nets.vgg import vgg_stages


def timm_backbone(
    name: str, pretrained: bool = False, in_chans: int = 3, input_size: int | None = None, **kwargs
) -> Backbone:
    """Build timm model ``name`` (``arch`` or ``arch.tag``) as a Backbone.

    ``pretrained`` loads the published weights through the Hugging Face / torch.hub cache.
    ``input_size`` overrides the model's default size; models with a fixed input size
    (ViT and relatives) are built for it (position embeddings resampled when pretrained).
    Extra keyword arguments go to ``timm.create_model``.
    """
    # A random VGG is built on the meta device: its 100M-parameter pre_logits, dropped below,
    # then never take memory or an initialisation (seconds per build).
    on_meta = not pretrained and timm.models.get_arch_name(name) in timm.list_models(module="vgg")
    with torch.device("meta") if on_meta else contextlib.nullcontext():
        model = _create(name, pretrained, in_chans, input_size, kwargs)
    cfg = timm.data.resolve_model_data_config(model)
    size = input_size or cfg["input_size"][-1]
    example = torch.zeros(1, in_chans, size, size, device="meta" if on_meta else "cpu")
    head_only = _drop_head_only_modules(model, example, name)
    if on_meta:
        model.to_empty(device="cpu")
        model._initialize_weights()  # timm's VGG initialisation, of what is kept
        for module in model.modules():  # the _bn variants' running statistics
            if hasattr(module, "reset_running_stats"):
                module.reset_running_stats()
    if isinstance(model, timm.models.vgg.VGG):
        coarse, fine, aliases = vgg_stages(model.features, "features")
    else:
        coarse, fine, aliases = _group_stages(model, True), _group_stages(model, False), {}
    backbone = Backbone(
        model, name=name, source="timm", num_features=model.num_features,
        data_config=DataConfig(
            in_chans, size, fit_stats(cfg["mean"], in_chans), fit_stats(cfg["std"], in_chans),
            cfg["interpolation"],
        ),
        coarse_stages=coarse, fine_stages=fine, features_fn=_forward_features,
        layer_aliases=aliases,
    )
    backbone.head_prefixes = _classifier_names(model) + tuple(head_only)
    if _own_pooling_fits(backbone, size, in_chans):
        backbone.global_pool_fn = _forward_head
    return backbone


def _create(
    name: str, pretrained: bool, in_chans: int, input_size: int | None, kwargs: dict
) -> nn.Module:
    """``timm.create_model`` without classifier; missing or unreachable weights -> UserError."""
    if pretrained and not timm.models.is_model_pretrained(name):
        raise UserError(
            f"timm publishes no pretrained weights for '{name}': set backbone.pretrained=false "
            "or backbone.weights=<file>"
        )
    if input_size is not None and timm.models.get_pretrained_cfg_value(name, "fixed_input_size"):
        kwargs.setdefault("img_size", input_size)
    try:
        return timm.create_model(
            name, pretrained=pretrained, num_classes=0, in_chans=in_chans, **kwargs
        )
    except OSError as err:
        raise UserError(download_failure_message(name, err)) from None
    except TypeError as err:  # an argument this family's constructor does not take
        if "drop_path_rate" in kwargs and "drop_path_rate" in str(err):
            raise UserError(f"backbone.drop_path_rate: timm's {name} has no stochastic depth; models with "
                            "residual blocks do (resnet18, convnext_atto, vit_tiny_patch16_224...)") from None
        raise


def _forward_features(body: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm's own unpooled features, channels first: ``(N, C, H, W)`` maps or ``(N, L, C)`` tokens.

    Models that say ``output_fmt == "NHWC"`` (Swin and relatives) return ``(N, H, W, C)`` maps;
    they are permuted so that pooling sees channels where it expects them.
    """
    features = body.forward_features(x)
    if getattr(body, "output_fmt", None) == "NHWC" and features.dim() == 4:
        features = features.permute(0, 3, 1, 2)
    return features


def _forward_head(body: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """timm's own pooling of ``features`` (``forward_head(..., pre_logits=True)``): the class token
    or an average, as the family does it; channels-last models get their layout back first."""
    if getattr(body, "output_fmt", None) == "NHWC" and features.dim() == 4:
        features = features.permute(0, 2, 3, 1)
    return body.forward_head(features, pre_logits=True)


def _own_pooling_fits(backbone: Backbone, size: int, in_chans: int) -> bool:
    """Whether timm's ``forward_head`` pools to ``num_features`` on this (head-pruned) model.

    Families whose head adds layers the pruning removed, or that have no ``forward_head``,
    keep the plain average over space or tokens.
    """
    if not hasattr(backbone.body, "forward_head"):
        return False
    try:
        with eval_mode(backbone.body), torch.no_grad():
            features = backbone.forward_features(torch.zeros(1, in_chans, size, size))
            pooled = _forward_head(backbone.body, features)
    except (RuntimeError, TypeError, ValueError, AttributeError):
        return False
    return pooled.dim() == 2 and pooled.shape[1] == backbone.num_features


def _classifier_names(model: nn.Module) -> tuple[str, ...]:
    """The classifier module names timm records for the model (``fc``, ``head.fc``, ...)."""
    names = model.pretrained_cfg.get("classifier") or ()
    return (names,) if isinstance(names, str) else tuple(names)


def _used_parameter_ids(output: torch.Tensor) -> set[int]:
    """Ids of the leaf tensors (parameters) the autograd graph of ``output`` reaches."""
    used: set[int] = set()
    seen: set[object] = set()
    pending = [output.grad_fn]
    while pending:
        node = pending.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if hasattr(node, "variable"):
            used.add(id(node.variable))
        pending.extend(next_node for next_node, _ in node.next_functions)
    return used


def _drop_head_only_modules(model: nn.Module, example: torch.Tensor, name: str) -> list[str]:
    """Replace by ``nn.Identity`` the outermost modules whose parameters the features ignore.

    One eval-mode forward of ``example`` with gradients recorded (nothing is computed
    backwards) tells which parameters reach ``forward_features``' output; it also rejects
    an input size the model cannot take. Returns the replaced module names.
    """
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(True)
        with torch.enable_grad():
            used = _used_parameter_ids(probe_features(name, model, _forward_features, example))
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)
    dropped: list[str] = []
    for module_name, module in list(model.named_modules()):
        if not module_name or any(module_name.startswith(f"{d}.") for d in dropped):
            continue
        owned = list(module.parameters())
        if owned and not any(id(p) in used for p in owned):
            parent, _, attr = module_name.rpartition(".")
            setattr(model.get_submodule(parent), attr, nn.Identity())
            dropped.append(module_name)
    return dropped


def _group_stages(model: nn.Module, coarse: bool) -> list[Stage]:
    """Stages from timm's ``group_matcher``, else from ``feature_info``, else the top-level children.

    Parameter groups are compressed to module names.
    """
    if hasattr(model, "group_matcher"):
        groups = list(group_parameters(model, model.group_matcher(coarse=coarse)).values())
    else:
        groups = _feature_info_groups(model)
    stages: list[Stage] = []
    for names in groups:
        entries = _compress(model, set(names), "")
        stage_name = entries[0] if len(entries) == 1 or stages else "stem"
        stages.append(Stage(stage_name, tuple(entries)))
    return stages


def _feature_info_groups(model: nn.Module) -> list[list[str]]:
    """Parameter-name groups cut at the modules ``feature_info`` lists (the model's stages):
    parameters before the first one form the stem, those after the last join the last; a model
    without ``feature_info`` is cut at its top-level children."""
    boundaries = [info["module"] for info in getattr(model, "feature_info", []) if info.get("module")]
    if not boundaries:
        boundaries = [name for name, child in model.named_children() if any(True for _ in child.parameters())]
    groups: list[list[str]] = [[] for _ in range(len(boundaries) + 1)]
    current = 0
    for name, _ in model.named_parameters():
        for index in range(current, len(boundaries)):
            if name == boundaries[index] or name.startswith(f"{boundaries[index]}."):
                current = index + 1
                break
        groups[current].append(name)
    return [group for group in groups if group]


def _compress(module: nn.Module, wanted: set[str], prefix: str) -> list[str]:
    """The fewest module (or parameter) names under ``prefix`` that cover exactly ``wanted``.

    A module all of whose parameters are wanted is named whole; otherwise its direct
    parameters that are wanted are named one by one and its children are searched.
    """
    owned = [n for n, _ in module.named_parameters(prefix=prefix)]
    if not any(n in wanted for n in owned):
        return []
    if prefix and all(n in wanted for n in owned):
        return [prefix]
    dot = f"{prefix}." if prefix else ""
    own = (f"{dot}{n}" for n, _ in module.named_parameters(recurse=False))
    entries = [n for n in own if n in wanted]
    for child_name, child in module.named_children():
        entries += _compress(child, wanted, f"{dot}{child_name}")
    return entries
