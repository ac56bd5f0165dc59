"""torchvision classification models as Backbones.

torchvision models have no common feature API, so each supported family gets a *layout*:
how to run its trunk up to the last feature map, its stages, its width and which of its
modules are the head. The head is replaced by ``nn.Identity`` (or dropped, for the
auxiliary classifiers), so ``body`` holds exactly the parameters that ``forward_features``
uses and the state-dict keys stay torchvision's (``conv1.weight``, ``features.24.weight``).

Stage names per family (coarse | fine):

- ``resnet*``/``resnext*``/``wide_resnet*``: ``stem``, ``layer1``..``layer4`` |
  ``stem``, ``layer1.0``, ``layer1.1``, ... (one per residual block).
- ``vgg*``/``alexnet``: ``block1``..``block5`` (``features`` split at its max-pools, as
  in Keras) | one per conv layer named by its module, ``features.0``, ``features.2``, ...
  (with its BatchNorm for ``*_bn``). ``layer_aliases`` maps Keras names
  (``block5_conv1``) to those modules (``features.24`` in VGG16).
- ``googlenet``/``inception_v3``: ``stem`` (the plain convs) then one stage per grid
  size, named by the shared prefix of its blocks (``inception3``..``inception5``;
  ``Mixed_5``..``Mixed_7``) | one per parametrised child (``conv1``, ``inception4a``;
  ``Conv2d_1a_3x3``, ``Mixed_7b``). The auxiliary classifiers are removed.
- ``mobilenet_v2``/``mobilenet_v3_*``/``efficientnet_*``: one stage per output
  resolution, named by its first module (``features.0``, ``features.2``, ...) | one per
  block (``features.3`` in MobileNet, ``features.3.1`` in EfficientNet).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torchvision
from torch import nn

from visionlab.data_config import IMAGENET_MEAN, IMAGENET_STD, DataConfig, fit_stats
from visionlab.errors import UserError
from visionlab.nets.backbone import Backbone, Stage
from visionlab.nets.hub import download_failure_message
from visionlab.nets.probe import probe_features
from visionlab.nets.vgg import vgg_stages

INCEPTION_FAMILY = ("googlenet", "inception_v3")
AUX_HEADS = ("aux1", "aux2", "AuxLogits")


@dataclass(frozen=True)
class _Layout:
    """What a family contributes to a Backbone once its head is removed."""

    num_features: int
    features_fn: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    coarse: list[Stage]
    fine: list[Stage]
    head_prefixes: tuple[str, ...]
    aliases: dict[str, str]


def torchvision_backbone(
    name: str, pretrained: bool = False, in_chans: int = 3, input_size: int | None = None, **kwargs
) -> Backbone:
    """Build torchvision model ``name`` without its classifier, wrapped as a Backbone.

    ``pretrained`` loads the model's ``DEFAULT`` weights through torch.hub's cache.
    ``in_chans`` other than 3 replaces the first conv, its pretrained filters adapted as
    timm does (summed for 1 channel, repeated and rescaled otherwise). Inputs are
    normalised with ImageNet statistics at 224 px (299 for ``inception_v3``) unless
    ``input_size`` says otherwise.
    """
    layout_fn = _layout_for(name)
    body = _create(name, pretrained, kwargs)
    if in_chans != 3:
        _adapt_first_conv(body, in_chans)
    layout = layout_fn(body)
    size = input_size or (299 if name == "inception_v3" else 224)
    with torch.no_grad():
        probe_features(name, body, layout.features_fn, torch.zeros(1, in_chans, size, size))
    mean, std = fit_stats(IMAGENET_MEAN, in_chans), fit_stats(IMAGENET_STD, in_chans)
    backbone = Backbone(
        body, name=name, source="torchvision", num_features=layout.num_features,
        data_config=DataConfig(in_chans, size, mean, std),
        coarse_stages=layout.coarse, fine_stages=layout.fine,
        features_fn=layout.features_fn, layer_aliases=layout.aliases,
    )
    backbone.head_prefixes = layout.head_prefixes
    return backbone


def _layout_for(name: str) -> Callable[[nn.Module], _Layout]:
    """The layout function of ``name``'s family, or a UserError naming the supported ones."""
    families: dict[tuple[str, ...], Callable[[nn.Module], _Layout]] = {
        ("resnet", "resnext", "wide_resnet"): _resnet_layout,
        ("vgg", "alexnet"): _pooled_features_layout,
        INCEPTION_FAMILY: _inception_layout,
        ("mobilenet_v2", "mobilenet_v3", "efficientnet"): _strided_features_layout,
    }
    for prefixes, layout_fn in families.items():
        if name.startswith(prefixes):
            return layout_fn
    supported = ", ".join(f"{p}*" for prefixes in families for p in prefixes)
    raise UserError(
        f"torchvision model '{name}' is not supported as a backbone (supported: {supported}); "
        "try backbone.source=timm"
    )


def _create(name: str, pretrained: bool, kwargs: dict) -> nn.Module:
    """``torchvision.models.get_model`` with download failures turned into a UserError.

    GoogLeNet/Inception: torchvision refuses ``aux_logits=False`` together with weights,
    so the auxiliary heads are built as it wishes and removed here afterwards.
    """
    if name in INCEPTION_FAMILY and not pretrained:
        kwargs.setdefault("init_weights", True)  # silences torchvision's init FutureWarning
    if name.startswith(("vgg", "alexnet")) and not pretrained:
        return _without_classifier_init(name, kwargs)
    try:
        weights = "DEFAULT" if pretrained else None
        model = torchvision.models.get_model(name, weights=weights, **kwargs)
    except OSError as err:
        raise UserError(download_failure_message(name, err)) from None
    if name in INCEPTION_FAMILY:
        model.aux_logits = False
        for aux in AUX_HEADS:
            if hasattr(model, aux):
                setattr(model, aux, None)
    return model


def _adapt_first_conv(body: nn.Module, in_chans: int) -> None:
    """Replace the first Conv2d by one taking ``in_chans`` channels, filters adapted."""
    from timm.models import adapt_input_conv

    name, conv = next((n, m) for n, m in body.named_modules() if isinstance(m, nn.Conv2d))
    new = nn.Conv2d(
        in_chans, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
        conv.dilation, conv.groups, conv.bias is not None,
    )
    with torch.no_grad():
        new.weight.copy_(adapt_input_conv(in_chans, conv.weight))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    parent, _, attr = name.rpartition(".")
    setattr(body.get_submodule(parent), attr, new)
    if getattr(body, "transform_input", False):
        body.transform_input = False  # re-normalises exactly three RGB channels


def _has_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def _resnet_features(body: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """ResNet trunk: stem and the four residual layers, before global pooling."""
    x = body.maxpool(body.relu(body.bn1(body.conv1(x))))
    return body.layer4(body.layer3(body.layer2(body.layer1(x))))


def _resnet_layout(body: nn.Module) -> _Layout:
    """ResNet/ResNeXt/Wide-ResNet: stem + ``layer1..4``; fine stages are residual blocks."""
    num_features = body.fc.in_features
    body.fc = nn.Identity()
    layers = [f"layer{i}" for i in range(1, 5)]
    stem = Stage("stem", ("conv1", "bn1"))
    fine = [stem] + [
        Stage(f"{layer}.{i}", (f"{layer}.{i}",))
        for layer in layers
        for i, _ in body.get_submodule(layer).named_children()
    ]
    return _Layout(
        num_features, _resnet_features, [stem] + [Stage(n, (n,)) for n in layers], fine,
        ("fc",), {},
    )


def _features_only(body: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Models whose trunk is ``body.features``: VGG, AlexNet, MobileNet, EfficientNet."""
    return body.features(x)


def _last_conv_channels(module: nn.Module) -> int:
    """Output channels of the last Conv2d in ``module``: the width of its feature map."""
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)][-1].out_channels


def _without_classifier_init(name: str, kwargs: dict) -> nn.Module:
    """A randomly initialised VGG/AlexNet whose fc classifier (about 120M parameters, dropped
    by the layout anyway) is never allocated or initialised: built on the meta device, then
    only ``features`` is materialised, initialised as torchvision does (VGG: Kaiming normal,
    fan-out; AlexNet: PyTorch's defaults). Seconds saved on every random VGG."""
    with torch.device("meta"):
        model = torchvision.models.get_model(name, weights=None, **kwargs)
    model.classifier = nn.Identity()
    model.to_empty(device="cpu")
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and name.startswith("vgg"):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
        elif hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return model


def _pooled_features_layout(body: nn.Module) -> _Layout:
    """VGG/AlexNet: ``features`` in max-pool blocks; the fc classifier is dropped."""
    body.classifier = nn.Identity()
    coarse, fine, aliases = vgg_stages(body.features, "features")
    return _Layout(
        _last_conv_channels(body.features), _features_only, coarse, fine, ("classifier",), aliases
    )


def _strided_features_layout(body: nn.Module) -> _Layout:
    """MobileNet/EfficientNet: coarse stages start at each downsampling child of ``features``.

    Fine stages are the blocks: the children of EfficientNet's per-stage Sequentials, or
    ``features``' own children in MobileNet, where each child is one block.
    """
    body.classifier = nn.Identity()
    coarse: list[Stage] = []
    fine: list[Stage] = []
    for index, child in body.features.named_children():
        module = f"features.{index}"
        blocks = (
            [f"{module}.{i}" for i, _ in child.named_children()]
            if type(child) is nn.Sequential
            else [module]
        )
        fine += [Stage(b, (b,)) for b in blocks]
        downsamples = any(isinstance(m, nn.Conv2d) and max(m.stride) > 1 for m in child.modules())
        if downsamples or not coarse:
            coarse.append(Stage(module, (module,)))
        else:
            coarse[-1] = Stage(coarse[-1].name, coarse[-1].modules + (module,))
    return _Layout(
        _last_conv_channels(body.features), _features_only, coarse, fine, ("classifier",), {}
    )


def _inception_features(body: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """GoogLeNet/Inception-v3 trunk: input re-normalisation, then every child before pooling."""
    x = body._transform_input(x)
    for name, child in body.named_children():
        if name == "avgpool":
            break
        x = child(x)
    return x


def _inception_layout(body: nn.Module) -> _Layout:
    """GoogLeNet/Inception-v3: ``stem`` then one coarse stage per grid size.

    Blocks named ``inception4a``/``Mixed_6b`` are grouped by the name without the final
    letter (``inception4``, ``Mixed_6``); every convolution before the first block is stem.
    """
    num_features = body.fc.in_features
    body.fc = nn.Identity()
    coarse: list[Stage] = []
    fine: list[Stage] = []
    for name, child in body.named_children():
        if not _has_params(child):
            continue
        fine.append(Stage(name, (name,)))
        is_block = name.startswith(("inception", "Mixed"))
        group = name[:-1] if is_block else "stem"
        if coarse and coarse[-1].name == group:
            coarse[-1] = Stage(group, coarse[-1].modules + (name,))
        else:
            coarse.append(Stage(group, (name,)))
    return _Layout(num_features, _inception_features, coarse, fine, ("fc",) + AUX_HEADS, {})
