"""The callback that applies a freeze plan to the backbone at every epoch start."""

from __future__ import annotations

import logging

import lightning as L
from torch import nn

from visionlab.finetune.plans import FreezePlan
from visionlab.models.backbone import Backbone

log = logging.getLogger(__name__)


def apply_plan(backbone: Backbone, plan: FreezePlan, epoch: int) -> list[str]:
    """Set ``requires_grad`` and norm-layer modes of every stage for ``epoch``.

    Returns the trainable stage names. BatchNorm layers of frozen stages are put in eval
    mode (their running statistics stay untouched) unless ``plan.train_bn``.
    """
    stages = backbone.stages(plan.granularity)
    trainable = plan.trainable_stages(epoch, [s.name for s in stages])
    frozen_norms: set[str] = set()
    for stage in stages:
        train = stage.name in trainable
        for p in backbone.stage_parameters(stage):
            p.requires_grad_(train)
        if not train and not plan.train_bn:
            for module_name in stage.modules:
                prefix = f"{module_name}." if module_name else ""
                for sub_name, sub in backbone.body.get_submodule(module_name).named_modules():
                    if isinstance(sub, nn.modules.batchnorm._BatchNorm):
                        frozen_norms.add(prefix + sub_name if sub_name else module_name)
    backbone.frozen_norm_modules = frozen_norms
    backbone.train(backbone.training)
    return [s.name for s in stages if s.name in trainable]


class FreezeScheduleCallback(L.Callback):
    """Applies ``plan`` at fit start and at every training-epoch start, and logs the result.

    Logged: ``freeze/trainable_params`` and ``freeze/frozen_params`` every epoch, and the
    trainable stage names (as text) whenever they change. The module must expose the
    backbone as ``pl_module.backbone``.
    """

    def __init__(self, plan: FreezePlan) -> None:
        self.plan = plan
        self._last: list[str] | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Put the model in the state of the (possibly resumed) starting epoch."""
        log.info("freeze plan: %s", self.plan.describe())
        self._apply(trainer, pl_module)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Re-apply the plan for the epoch that is starting."""
        self._apply(trainer, pl_module)
        trainable = sum(p.numel() for p in pl_module.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in pl_module.parameters() if not p.requires_grad)
        pl_module.log("freeze/trainable_params", float(trainable), on_step=False, on_epoch=True)
        pl_module.log("freeze/frozen_params", float(frozen), on_step=False, on_epoch=True)

    def _apply(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        names = apply_plan(pl_module.backbone, self.plan, trainer.current_epoch)
        if names != self._last:
            self._last = names
            text = ", ".join(names) if names else "(none: backbone frozen)"
            log.info("epoch %d: trainable backbone stages: %s", trainer.current_epoch, text)
            for logger in trainer.loggers:
                add_text = getattr(getattr(logger, "experiment", None), "add_text", None)
                if add_text is not None and trainer.is_global_zero:
                    add_text("freeze/trainable_stages", text, trainer.current_epoch)
