"""``visionlab stages NAME``: a backbone's stages, the names the freeze plans take."""

from __future__ import annotations

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
