"""Optimizer parameter groups: one per backbone stage plus one for the head.

Every parameter is in the optimizer from the first step, frozen or not, so an unfreeze
never adds a group mid-training (which breaks ReduceLROnPlateau, OneCycleLR and others);
a frozen parameter simply has no gradient, and optimizers skip it.
"""

from __future__ import annotations

from torch import nn

from visionlab.finetune.plans import FreezePlan
from visionlab.nets.backbone import Backbone


def build_param_groups(backbone: Backbone, head: nn.Module, plan: FreezePlan, base_lr: float) -> list[dict]:
    """Groups named ``backbone/<stage>`` and ``head``, each with its own ``lr``."""
    stages = backbone.stages(plan.granularity)
    mults = plan.lr_multipliers([s.name for s in stages])
    groups = [
        {"name": f"backbone/{s.name}", "params": backbone.stage_parameters(s), "lr": base_lr * mults[s.name]}
        for s in stages
    ]
    groups.append({"name": "head", "params": list(head.parameters()), "lr": base_lr})
    return [g for g in groups if g["params"]]
