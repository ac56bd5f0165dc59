"""Small CNNs written here: LeNet-5, the course's 4-block "Chollet" CNN, and shapes_net.

Each is an ``nn.Sequential`` of named blocks, so its coarse stages are the blocks and its
fine stages are the parametrised layers inside them.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from visionlab.data_config import DataConfig
from visionlab.errors import UserError
from visionlab.nets.backbone import Backbone, Stage
from visionlab.registry import Registry

# backbone.source=custom: small networks defined here, or by a user in a module of their own
# (``backbone.name=mypackage.nets.tiny_cnn`` imports it; its decorator registers ``tiny_cnn``).
CUSTOM_BACKBONES: Registry = Registry("custom backbone")

GRAY_MEAN, GRAY_STD = 0.5, 0.5


def _conv_unit(in_ch: int, out_ch: int, batchnorm: bool) -> nn.Sequential:
    """3x3 conv + ReLU, or conv-without-bias + BatchNorm + ReLU when ``batchnorm``."""
    if batchnorm:
        return nn.Sequential(
            OrderedDict(
                conv=nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
                bn=nn.BatchNorm2d(out_ch),
                act=nn.ReLU(inplace=True),
            )
        )
    return nn.Sequential(
        OrderedDict(conv=nn.Conv2d(in_ch, out_ch, 3, padding=1), act=nn.ReLU(inplace=True))
    )


def sequential_backbone(
    blocks: OrderedDict, *, name: str, num_features: int, data_config: DataConfig
) -> Backbone:
    """Wrap named blocks as a Backbone: blocks are coarse stages, parametrised units fine ones (the
    helper a custom backbone family of one's own can use too)."""
    body = nn.Sequential(blocks)
    coarse = [Stage(n, (n,)) for n, m in body.named_children() if any(True for _ in m.parameters())]
    fine = []
    for block_name, block in body.named_children():
        children = list(block.named_children()) if isinstance(block, nn.Sequential) else []
        units = [(f"{block_name}.{c}", m) for c, m in children] or [(block_name, block)]
        fine += [Stage(n, (n,)) for n, m in units if any(True for _ in m.parameters())]
    return Backbone(
        body, name=name, source="custom", num_features=num_features,
        data_config=data_config, coarse_stages=coarse, fine_stages=fine,
    )


def _stats(in_chans: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Normalisation stats for nets trained from scratch: map [0, 1] to [-1, 1]."""
    return (GRAY_MEAN,) * in_chans, (GRAY_STD,) * in_chans


@CUSTOM_BACKBONES.register("lenet5")
def lenet5(in_chans: int = 1, input_size: int = 32) -> Backbone:
    """LeNet-5 (LeCun 1998): two 5x5 conv + pool blocks and the C5 conv to 120 features.

    Tanh activations and average pooling as in the paper; expects 32x32 input.
    """
    blocks = OrderedDict(
        c1=nn.Sequential(OrderedDict(conv=nn.Conv2d(in_chans, 6, 5), act=nn.Tanh(), pool=nn.AvgPool2d(2))),
        c3=nn.Sequential(OrderedDict(conv=nn.Conv2d(6, 16, 5), act=nn.Tanh(), pool=nn.AvgPool2d(2))),
        c5=nn.Sequential(OrderedDict(conv=nn.Conv2d(16, 120, 5), act=nn.Tanh())),
    )
    mean, std = _stats(in_chans)
    return sequential_backbone(
        blocks, name="lenet5", num_features=120,
        data_config=DataConfig(in_chans, input_size, mean, std),
    )


@CUSTOM_BACKBONES.register("chollet_cnn")
def chollet_cnn(in_chans: int = 3, input_size: int = 150, batchnorm: bool = False) -> Backbone:
    """The course's small CNN from scratch (Chollet, *Deep Learning with Python*): conv blocks
    of 32-64-128-128 filters with max-pooling — the convolutional base.

    Its Flatten -> Dense 512 + ReLU is class-specific, so it is the *head*
    (``default_head``): a transfer from a chollet_cnn checkpoint reuses only the generic conv
    base, while a run from scratch still builds the course's whole architecture. Weight files
    of the earlier layout (``dense.*`` in the body) load with that part set aside as old head.
    ``batchnorm=True`` uses conv-without-bias -> BatchNorm -> ReLU in every block.
    """
    widths = (32, 64, 128, 128)
    blocks: OrderedDict[str, nn.Module] = OrderedDict()
    in_ch, size = in_chans, input_size
    for i, width in enumerate(widths, start=1):
        unit = _conv_unit(in_ch, width, batchnorm)
        unit.add_module("pool", nn.MaxPool2d(2))
        blocks[f"block{i}"] = unit
        in_ch, size = width, size // 2
    if size < 1:
        raise UserError(f"backbone.input_size={input_size} is too small for chollet_cnn: use >= 16")
    mean, std = _stats(in_chans)
    backbone = sequential_backbone(
        blocks, name="chollet_cnn", num_features=in_ch,
        data_config=DataConfig(in_chans, input_size, mean, std),
    )
    backbone.head_prefixes = ("dense",)
    backbone.default_head = {"pool": "flatten", "hidden": [512]}
    return backbone


SHAPES_NET_WIDTHS = (32, 64, 128, 256)


@CUSTOM_BACKBONES.register("shapes_net")
def shapes_net(in_chans: int = 3, input_size: int = 64) -> Backbone:
    """The small BatchNorm CNN visionlab pretrains on ``shapes_source`` and ships.

    Four blocks (two conv units in the first three, one in the last), each halving the
    resolution; 0.58 M parameters, 2.3 MB as safetensors.
    """
    blocks: OrderedDict[str, nn.Module] = OrderedDict()
    in_ch = in_chans
    for i, width in enumerate(SHAPES_NET_WIDTHS, start=1):
        units = OrderedDict(conv1=_conv_unit(in_ch, width, batchnorm=True))
        if i < len(SHAPES_NET_WIDTHS):
            units["conv2"] = _conv_unit(width, width, batchnorm=True)
            units["pool"] = nn.MaxPool2d(2)
        blocks[f"block{i}"] = nn.Sequential(units)
        in_ch = width
    mean, std = _stats(in_chans)
    return sequential_backbone(
        blocks, name="shapes_net", num_features=SHAPES_NET_WIDTHS[-1],
        data_config=DataConfig(in_chans, input_size, mean, std),
    )


