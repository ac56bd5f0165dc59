"""The image-classifier LightningModule: a backbone, a new head, metrics, optimizers."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from visionlab.checkpoint_header import CLASSIFIER
from visionlab.errors import UserError, first_line
from visionlab.finetune.lr_phase import init_phase, scheduler_view
from visionlab.finetune.param_groups import build_param_groups
from visionlab.finetune.plans import FreezePlan
from visionlab.metrics.classification import ConfusionMetrics
from visionlab.nets.backbone import Backbone
from visionlab.nets.head import ClassifierHead

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]


def compiled(function: Callable, compile: bool | str) -> Callable:
    """``function`` compiled with ``torch.compile`` (``true``: inductor, or the named backend), or as is.

    Dynamo guards on whether parameters require gradients and on train/eval mode, so each
    freeze-plan phase compiles once more (a staged plan with one unfreeze: 3-4 graphs in
    all), never once per step.
    """
    if compile is False or compile is None:
        return function
    backend = "inductor" if compile is True else str(compile)
    if backend not in torch._dynamo.list_backends(exclude_tags=()):
        raise UserError(f"model.compile={compile!r} is not a torch.compile backend: use true (inductor) or "
                        f"one of: {', '.join(torch._dynamo.list_backends(exclude_tags=()))}")
    return torch.compile(function, backend=backend)


class ClassifierModule(L.LightningModule):
    """Backbone + :class:`ClassifierHead`, trained with cross-entropy.

    Logs ``{train,val,test}/loss``, ``/acc`` and ``/f1`` (macro-averaged) once per epoch: a
    step only adds to running sums (a few tensor ops), since per-step ``self.log`` calls cost
    small models a large share of their step time. The progress bar shows the running
    ``train/loss`` every ``trainer.log_every_n_steps`` steps.
    ``optimizer`` and ``scheduler`` are partially applied constructors (Hydra
    ``_partial_: true``) completed in :meth:`configure_optimizers` with one parameter group
    per backbone stage, so freeze plans never add groups mid-run. A scheduler factory that
    takes a ``total_steps`` argument is given the run's number of optimizer steps.
    ``freeze_plan`` is prepared here (it may truncate the backbone) before the head is built;
    its phase factor (two_phase, lp_ft) multiplies the scheduled LRs, see
    :mod:`visionlab.finetune.lr_phase`. GPU speed options, off by default: ``channels_last``
    (NHWC backbone and inputs) and ``compile`` (``torch.compile`` of the backbone's forward;
    a freeze-plan change of ``requires_grad`` makes it compile once more, see :func:`compiled`).
    With ``inputs_are_features`` (set by the feature cache) batches hold pooled backbone
    features and only the head runs.
    Only plain values are saved as hyperparameters, so checkpoints load with
    ``torch.load(weights_only=True)``.
    """

    kind = CLASSIFIER  # what the checkpoint header reports (see visionlab.checkpoint_header)

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        optimizer: OptimizerFactory,
        class_names: Sequence[str] | None = None,
        head: dict | None = None,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        scheduler_monitor: str = "val/loss",
        label_smoothing: float = 0.0,
        freeze_plan: FreezePlan | None = None,
        channels_last: bool = False,
        compile: bool | str = False,
    ) -> None:
        super().__init__()
        # null fields of model.head take the backbone's recipe (chollet_cnn: Flatten -> Dense 512)
        head = {"pool": "avg", "hidden": [], **backbone.default_head,
                **{k: v for k, v in (head or {}).items() if v is not None}}
        self.freeze_plan = freeze_plan or FreezePlan()
        self.freeze_plan.prepare(backbone)
        self.save_hyperparameters(
            {
                "num_classes": num_classes,
                "class_names": list(class_names or []),
                "head": head,
                "label_smoothing": label_smoothing,
                "backbone": {"name": backbone.name, "source": backbone.source,
                             "num_features": backbone.num_features,
                             # where the plan cut it (freeze=auto decides from the data): rebuilt as trained
                             "truncate_after": self.freeze_plan.truncate_after},
            },
            logger=False,  # the run logs the whole config to TensorBoard's HPARAMS (visionlab.train)
        )
        self.backbone = backbone
        self.head = ClassifierHead(self._head_in_features(backbone, head.get("pool", "avg")),
                                   num_classes, **head, pool_fn=backbone.pool)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        self.scheduler_monitor = scheduler_monitor
        self.inputs_are_features = False
        self.channels_last = channels_last
        if channels_last:
            self.backbone.to(memory_format=torch.channels_last)
        self.backbone_features = compiled(backbone.forward_features, compile)
        self.train_metrics = ConfusionMetrics(num_classes, prefix="train/")
        self.val_metrics = ConfusionMetrics(num_classes, prefix="val/")
        self.test_metrics = ConfusionMetrics(num_classes, prefix="test/")
        self._loss_sums: dict[str, tuple[torch.Tensor, int]] = {}

    @staticmethod
    def _head_in_features(backbone: Backbone, pool: str) -> int:
        """Width of the pooled features; for ``flatten`` found with one dummy forward."""
        if pool != "flatten":
            return backbone.num_features
        return int(backbone.forward_example()[0].numel())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` for images ``(N, C, H, W)``."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.head(self.backbone_features(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch's inputs: images, or cached features when ``inputs_are_features``."""
        return self.head(x) if self.inputs_are_features else self(x)

    def _step(self, batch, metrics: ConfusionMetrics, stage: str) -> torch.Tensor:
        x, y = batch
        logits = self.logits(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.hparams.label_smoothing)
        metrics.update(logits.detach(), y)
        total, count = self._loss_sums.get(stage, (0.0, 0))
        self._loss_sums[stage] = (total + loss.detach() * len(y), count + len(y))
        return loss

    def _log_epoch(self, metrics: ConfusionMetrics, stage: str) -> None:
        """Log the epoch's mean loss and metrics (synchronised across processes), then reset them."""
        total, count = self._loss_sums.pop(stage, (None, 0))
        if count == 0:
            return
        self.log(f"{stage}/loss", total / count, prog_bar=True, sync_dist=True)
        self.log_dict(metrics.compute(), prog_bar=stage != "train")
        metrics.reset()

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        """Cross-entropy on one batch; loss and metrics accumulate over the epoch."""
        loss = self._step(batch, self.train_metrics, "train")
        if batch_idx % self.trainer.log_every_n_steps == 0:  # the running mean, for the progress bar
            total, count = self._loss_sums["train"]
            self.log("train/loss_running", total / count, prog_bar=True, logger=False)
        return loss

    def on_train_epoch_end(self) -> None:
        """Log the training loss and metrics of the epoch."""
        self._log_epoch(self.train_metrics, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        """Validation loss and metrics, aggregated over the epoch."""
        self._step(batch, self.val_metrics, "val")

    def on_validation_epoch_end(self) -> None:
        """Log the validation loss and metrics of the epoch (not kept from the sanity check)."""
        self._log_epoch(self.val_metrics, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        """Test loss and metrics, aggregated over the epoch."""
        self._step(batch, self.test_metrics, "test")

    def on_test_epoch_end(self) -> None:
        """Log the test loss and metrics, at the last trained epoch (Lightning would put them one past it)."""
        self._log_epoch(self.test_metrics, "test")
        self.log("epoch", float(max(self.trainer.current_epoch - 1, 0)))

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        """Class probabilities ``(N, num_classes)``."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.logits(x).softmax(dim=-1)

    def configure_optimizers(self):
        """The optimizer over per-stage parameter groups, plus the scheduler if configured."""
        base_lr = getattr(self.optimizer_factory, "keywords", {}).get("lr")
        if base_lr is None:
            raise UserError("the optimizer config has no lr: set optimizer.lr=<value>")
        groups = build_param_groups(self.backbone, self.head, self.freeze_plan, base_lr)
        try:
            optimizer = self.optimizer_factory(params=groups)
        except ValueError as err:  # torch checks lr, betas, momentum, weight_decay, eps
            raise UserError(f"the optimizer rejects its settings: {first_line(err)}: fix that "
                            "optimizer.* value (e.g. optimizer.lr=1e-3)") from err
        scheduler = None
        if self.scheduler_factory is not None:
            kwargs = {}
            if "total_steps" in inspect.signature(self.scheduler_factory).parameters:
                kwargs["total_steps"] = int(self.trainer.estimated_stepping_batches)
            scheduler = self.scheduler_factory(optimizer=optimizer, **kwargs)
        init_phase(optimizer)  # after the scheduler has set its initial LRs
        if scheduler is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval,
                             "monitor": self.scheduler_monitor},
        }

    def lr_scheduler_step(self, scheduler, metric) -> None:
        """Step the scheduler on its own (unscaled) LRs, then re-apply the plan's phase factor."""
        with scheduler_view(scheduler.optimizer):
            super().lr_scheduler_step(scheduler, metric)
