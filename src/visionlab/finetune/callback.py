"""The callback that applies a freeze plan at every epoch start, and :func:`apply_plan`.

Unlike Lightning's ``BackboneFinetuning`` it never adds optimizer param groups (every
parameter is in the optimizer from the start, see :mod:`visionlab.finetune.param_groups`),
it re-derives the whole state from the epoch (so resuming lands where the uninterrupted run
was), puts the BatchNorm of frozen stages in eval mode, and scales learning rates through
the phase factor (:mod:`visionlab.finetune.lr_phase`) instead of fighting the scheduler.
Under DDP it is applied after the model is wrapped, so DDP registers every parameter and
keeps late-unfrozen ones in sync (this needs ``ddp_find_unused_parameters_true``).
"""

from __future__ import annotations

import logging

import lightning as L
from torch import nn

from visionlab.finetune.lr_phase import set_phase_factor
from visionlab.finetune.plans import FreezePlan
from visionlab.nets.backbone import Backbone

log = logging.getLogger(__name__)


def warn_about_unreached_milestones(plan: FreezePlan, backbone: Backbone, max_epochs: int | None) -> None:
    """Warn when the plan changes only after the run's last epoch (e.g. two_phase epochs >= max_epochs)."""
    if not max_epochs or max_epochs < 0:
        return
    epoch = plan.first_change_after(len(backbone.stages(plan.granularity)), max_epochs)
    if epoch is not None:
        log.warning("the freeze plan changes at epoch %d (counting from 0), but trainer.max_epochs=%d "
                    "stops after epoch %d: raise trainer.max_epochs to at least %d or move the milestone "
                    "(the plan: %s)", epoch, max_epochs, max_epochs - 1, epoch + 1, plan.describe())


def apply_plan(backbone: Backbone, plan: FreezePlan, epoch: int) -> list[str]:
    """Set ``requires_grad`` and norm-layer modes of every stage for ``epoch``.

    Returns the trainable stage names (input side first). BatchNorm layers of frozen
    stages are put in eval mode (running statistics untouched) unless ``plan.train_bn``.
    """
    stages = backbone.stages(plan.granularity)
    trainable = plan.trainable_stages(epoch, [s.name for s in stages])
    frozen_norms: set[str] = set()
    for stage in stages:
        train = stage.name in trainable
        for p in backbone.stage_parameters(stage):
            p.requires_grad_(train)
        if not train and not plan.train_bn:
            frozen_norms |= _norm_modules(backbone.body, stage.modules)
    backbone.frozen_norm_modules = frozen_norms
    backbone.train(backbone.training)
    return [s.name for s in stages if s.name in trainable]


def _norm_modules(body: nn.Module, entries: tuple[str, ...]) -> set[str]:
    """Qualified names of the BatchNorm layers inside the stage entries that are modules."""
    found = set()
    for entry in entries:
        try:
            module = body.get_submodule(entry)
        except AttributeError:  # a bare parameter entry (a ViT's cls_token): no norm inside
            continue
        for sub_name, sub in module.named_modules():
            if isinstance(sub, nn.modules.batchnorm._BatchNorm):
                found.add(f"{entry}.{sub_name}" if sub_name and entry else sub_name or entry)
    return found


class FreezeScheduleCallback(L.Callback):
    """Applies the module's freeze plan at fit start and every training-epoch start; logs it.

    The plan belongs to the LightningModule (``pl_module.freeze_plan``), which prepared it
    (truncation, ``from_layer`` resolution, the ``auto`` choice) and built its parameter
    groups from it; this callback only reads it, so there is one owner and no copy to
    disagree with. The module exposes the network the plan freezes as ``pl_module.backbone``.

    Logged every epoch: ``freeze/trainable_params``, ``freeze/frozen_params``,
    ``freeze/trainable_stages`` (a count), ``freeze/lr_factor``, and the trainable stage
    names as TensorBoard text ``freeze/trainable_stage_names`` (also in the text log when
    they change). Plans with state (``lp_ft``'s plateau rule) see the metrics at every
    validation end; their state is saved in the checkpoint. The phase LR factor is applied
    to the optimizers that hold backbone parameters (a GAN's generator optimizer is not one).
    """

    def __init__(self) -> None:
        self.plan: FreezePlan | None = None
        # The plan's epoch to apply whatever the trainer's (None: the trainer's); the LR range
        # test holds one phase of the plan for all its steps.
        self.held_epoch: int | None = None
        self._pending_state: dict = {}
        self._last: list[str] | None = None

    def plan_epoch(self, trainer: L.Trainer) -> int:
        """The epoch whose plan applies: :attr:`held_epoch`, else the trainer's."""
        return self.held_epoch if self.held_epoch is not None else trainer.current_epoch

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Take the module's plan (and any plan state a checkpoint gave before it was known)."""
        self.plan = pl_module.freeze_plan
        if self._pending_state:
            self.plan.load_state_dict(self._pending_state)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Put the model in the plan's state for the starting epoch (re-done at epoch start)."""
        log.info("freeze plan: %s", self.plan.describe())
        warn_about_unreached_milestones(self.plan, pl_module.backbone, trainer.max_epochs)
        self._apply(trainer, pl_module)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Re-apply the plan for the epoch that is starting, and log the state."""
        names = self._apply(trainer, pl_module)
        epoch = self.plan_epoch(trainer)
        if names != self._last:
            self._last = names
            log.info("epoch %d: trainable backbone stages: %s", epoch, _as_text(names))
        trainable = sum(p.numel() for p in pl_module.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in pl_module.parameters() if not p.requires_grad)
        for key, value in (("trainable_params", trainable), ("frozen_params", frozen),
                           ("trainable_stages", len(names)), ("lr_factor", self.plan.lr_factor(epoch))):
            pl_module.log(f"freeze/{key}", float(value), on_step=False, on_epoch=True)
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                log_text(logger, "freeze/trainable_stage_names", _as_text(names), epoch)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Let a stateful plan see this epoch's metrics; rank 0 decides for every rank."""
        if trainer.sanity_checking:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        self.plan.observe(trainer.current_epoch, metrics)
        self.plan.load_state_dict(trainer.strategy.broadcast(self.plan.state_dict(), src=0))

    def state_dict(self) -> dict:
        """The plan's non-epoch state (e.g. where a plateau switched), for checkpoints."""
        return {"plan": self.plan.state_dict() if self.plan is not None else {}}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the plan's state from a checkpoint (into the module's plan)."""
        self._pending_state = dict(state_dict.get("plan", {}))
        if self.plan is not None:
            self.plan.load_state_dict(self._pending_state)

    def _apply(self, trainer: L.Trainer, pl_module: L.LightningModule) -> list[str]:
        epoch = self.plan_epoch(trainer)
        names = apply_plan(pl_module.backbone, self.plan, epoch)
        backbone_params = {id(p) for p in pl_module.backbone.parameters()}
        for optimizer in trainer.optimizers:
            if any(id(p) in backbone_params for g in optimizer.param_groups for p in g["params"]):
                set_phase_factor(optimizer, self.plan.lr_factor(epoch))
        return names


def log_text(logger, tag: str, text: str, step: int) -> None:
    """``text`` under exactly ``tag`` in TensorBoard's *Text* tab (no-op for other loggers).

    ``SummaryWriter.add_text`` files it under ``<tag>/text_summary``; a text summary written
    with TensorBoard's own ``text_pb`` keeps the tag as given.
    """
    writer = getattr(getattr(logger, "experiment", None), "file_writer", None)
    if writer is None or not hasattr(writer, "add_summary"):
        return
    from tensorboard.plugins.text.summary_v2 import text_pb

    writer.add_summary(text_pb(tag, text), step)


def _as_text(names: list[str]) -> str:
    return ", ".join(names) if names else "(none: backbone frozen)"
