"""Keras-style stages of a VGG/AlexNet ``features`` Sequential, for timm's and torchvision's VGG."""

from __future__ import annotations

from torch import nn

from visionlab.nets.backbone import Stage


def vgg_stages(
    features: nn.Sequential, prefix: str
) -> tuple[list[Stage], list[Stage], dict[str, str]]:
    """Stages of a VGG/AlexNet-style ``features`` Sequential (shared by timm's VGG).

    Coarse stages ``block1``.. split the layers at each max-pool, as Keras's VGG blocks do;
    fine stages are the conv layers (with a following BatchNorm), named by their module.
    Returns ``(coarse, fine, aliases)`` with Keras aliases ``block{b}_conv{c}`` -> module.
    """
    coarse: list[Stage] = []
    fine: list[Stage] = []
    aliases: dict[str, str] = {}
    block: list[str] = []
    convs = 0
    for index, layer in features.named_children():
        module = f"{prefix}.{index}"
        if isinstance(layer, nn.Conv2d):
            convs += 1
            aliases[f"block{len(coarse) + 1}_conv{convs}"] = module
            fine.append(Stage(module, (module,)))
            block.append(module)
        elif any(True for _ in layer.parameters()):
            fine[-1] = Stage(fine[-1].name, fine[-1].modules + (module,))
            block.append(module)
        elif isinstance(layer, nn.MaxPool2d) and block:
            coarse.append(Stage(f"block{len(coarse) + 1}", tuple(block)))
            block, convs = [], 0
    if block:
        coarse.append(Stage(f"block{len(coarse) + 1}", tuple(block)))
    return coarse, fine, aliases
