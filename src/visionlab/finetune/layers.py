"""Resolving a user's layer name (``freeze.from_layer``) to a position in the stage list."""

from __future__ import annotations

from visionlab.errors import UserError, closest
from visionlab.nets.backbone import Backbone, stage_entry_parameters


def stages_from_layer(backbone: Backbone, layer: str, granularity: str) -> list[str]:
    """Names of the ``granularity`` stages from the one that starts at ``layer`` to the last.

    ``layer`` is looked up as a Keras-style alias (``block5_conv1``), then as a stage name of
    either granularity, then as a module or parameter of the backbone's body
    (``features.24``). It must start a stage: if it lies inside one, the error says to use
    the finer granularity. Unknown names get the nearest known names in the error.
    """
    target = backbone.layer_aliases.get(layer, layer)
    params = _layer_parameters(backbone, target)
    if not params:
        choices = _known_layer_names(backbone)
        near = closest(layer, choices) or choices[-5:]
        raise UserError(f"freeze.from_layer='{layer}' names no layer with weights in {backbone.name}; "
                        f"nearest: {', '.join(near)}")
    stages = backbone.stages(granularity)
    first = params[0]
    for index, stage in enumerate(stages):
        stage_params = backbone.stage_parameters(stage)
        if not any(p is first for p in stage_params):
            continue
        if stage_params[0] is not first:
            starts = ", ".join(s.name for s in stages[max(0, index - 1): index + 2])
            hint = "use freeze.granularity=fine, or " if granularity == "coarse" else ""
            raise UserError(f"freeze.from_layer='{layer}' starts inside stage '{stage.name}' "
                            f"({granularity}): {hint}name a layer that starts a stage ({starts})")
        return [s.name for s in stages[index:]]
    raise UserError(f"freeze.from_layer='{layer}' is not part of {backbone.name}'s {granularity} stages")


def _layer_parameters(backbone: Backbone, target: str) -> list:
    """Parameters of stage ``target`` (either granularity) or of body module/parameter ``target``."""
    for granularity in ("coarse", "fine"):
        for stage in backbone.stages(granularity):
            if stage.name == target:
                return backbone.stage_parameters(stage)
    try:
        return stage_entry_parameters(backbone.body, target)
    except AttributeError:
        return []


def _known_layer_names(backbone: Backbone) -> list[str]:
    """Every name ``from_layer`` accepts: aliases, stage names, modules that hold weights."""
    names = list(backbone.layer_aliases)
    for granularity in ("coarse", "fine"):
        names += [s.name for s in backbone.stages(granularity)]
    names += [n for n, m in backbone.body.named_modules() if n and any(True for _ in m.parameters())]
    return list(dict.fromkeys(names))
