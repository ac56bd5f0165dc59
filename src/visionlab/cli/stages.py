"""``visionlab stages NAME``: a backbone's stages, the names the freeze plans take."""

from __future__ import annotations

import argparse

from visionlab.cli.commands import command
from visionlab.project import conf_dir_if_any


def resolve_backbone_name(name: str, source: str | None) -> tuple[str, str]:
    """(model name, source) for a preset of the project's conf/backbone/ or a bare model name (its
    source: the first that knows it, else timm's, which then suggests close names)."""
    from omegaconf import OmegaConf

    from visionlab.nets.sources import BACKBONE_SOURCES

    conf = conf_dir_if_any()
    preset = conf / "backbone" / f"{name}.yaml" if conf is not None else None
    if source is None and preset is not None and preset.is_file() and name != "timm":
        cfg = OmegaConf.load(preset)
        return cfg.name, cfg.source
    if source is None:
        source = next((known for known, origin in BACKBONE_SOURCES.items() if origin.knows(name)), "timm")
    return name, source


def cmd_stages(name: str, source: str | None, granularity: str) -> None:
    """Print a backbone's stages (input side first) with parameter counts.

    These are the names ``freeze.from_layer``, ``freeze.truncate_after`` and the staged
    freeze plans accept.
    """
    from visionlab.nets.factory import create_backbone

    name, source = resolve_backbone_name(name, source)
    backbone = create_backbone(name, source=source, pretrained=False)
    stages = backbone.stages(granularity)
    print(f"{backbone.name} ({backbone.source}): {len(stages)} {granularity} stages, "
          f"{backbone.num_features} features, input {backbone.data_config.input_size}px")
    for index, stage in enumerate(stages):
        count = sum(p.numel() for p in backbone.stage_parameters(stage))
        print(f"  {index:3d}  {stage.name:<32} {count:>12,d} params")
    for alias, target in backbone.layer_aliases.items():
        print(f"  alias {alias} -> {target}")


def stages_arguments(parser: argparse.ArgumentParser) -> None:
    """The backbone's name, its source and the granularity."""
    parser.add_argument("name", help="a preset or model name, e.g. shapes_net, resnet18, vgg16")
    parser.add_argument("--source", default=None,
                        help="a backbone source: timm | torchvision | custom | a module's (default: guess)")
    parser.add_argument("--granularity", default="coarse", choices=("coarse", "fine"))


@command("stages", "list a backbone's stages (names for freeze.from_layer)", stages_arguments)
def run_stages(args: argparse.Namespace) -> None:
    """:func:`cmd_stages` on the parsed arguments."""
    cmd_stages(args.name, args.source, args.granularity)
