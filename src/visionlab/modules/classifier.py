"""The image-classifier LightningModule: a backbone, a new head, metrics, optimizers."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig

from visionlab.data_config import DataConfig
from visionlab.errors import UserError, first_line
from visionlab.finetune.callback import FreezeScheduleCallback
from visionlab.finetune.lr_phase import init_phase, scheduler_view
from visionlab.finetune.param_groups import build_param_groups
from visionlab.finetune.plans import FreezePlan
from visionlab.metrics.classification import ConfusionMetrics
from visionlab.modules.base import RunModule, freeze_plan_for, register_kind
from visionlab.modules.batch_mixing import BatchMixing, soft_target_cross_entropy
from visionlab.modules.capabilities import Classifies
from visionlab.modules.speed_options import compiled
from visionlab.modules.weight_ema import WeightEMA
from visionlab.nets.backbone import Backbone
from visionlab.nets.factory import backbone_from_recipe, build_backbone
from visionlab.nets.head import ClassifierHead

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]


log = logging.getLogger(__name__)


@register_kind
class ClassifierModule(Classifies, RunModule):
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
    features and only the head runs. ``batch_mixing`` (the ``mixup`` group) trains on MixUp /
    CutMix blends against soft targets (:mod:`~visionlab.modules.batch_mixing`); training
    accuracy then counts the label with the larger weight in each blend.
    Only plain values are saved as hyperparameters, so checkpoints load with
    ``torch.load(weights_only=True)``; they include the backbone's recipe (the group entry that
    builds it, :func:`~visionlab.nets.factory.build_backbone`), so ``ClassifierModule(**hparams)``
    rebuilds the trained network: ``backbone`` may be that saved dict, and ``optimizer`` is only
    needed to train.
    """

    kind = "classifier"
    capabilities = frozenset({"classify", "export"})
    legacy_hparams = frozenset({"class_names", "backbone"})
    mixes_training_batches = True

    def __init__(
        self,
        backbone: Backbone | dict,
        num_classes: int,
        optimizer: OptimizerFactory | None = None,
        class_names: Sequence[str] | None = None,
        head: dict | None = None,
        scheduler: SchedulerFactory | None = None,
        scheduler_interval: str = "epoch",
        scheduler_monitor: str = "val/loss",
        label_smoothing: float = 0.0,
        freeze_plan: FreezePlan | None = None,
        channels_last: bool = False,
        compile: bool | str = False,
        ema_decay: float = 0.0,
        batch_mixing: BatchMixing | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= ema_decay < 1.0:
            raise UserError(f"model.ema_decay={ema_decay} must be in [0, 1) (0: no weight EMA; e.g. 0.999)")
        if batch_mixing is not None and batch_mixing.enabled and num_classes < 2:
            raise UserError(f"{batch_mixing.describe()} blends images of different classes, and the data has "
                            f"{num_classes} class: set mixup=none")
        if isinstance(backbone, dict):  # the hyperparameters a checkpoint saved
            backbone = rebuilt_backbone(backbone)
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
                             # where it was cut (freeze=auto decides from the data): rebuilt as trained
                             "truncate_after": backbone.truncated_after,
                             "recipe": backbone.recipe},
                "ema_decay": ema_decay,
                "channels_last": channels_last,
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
        self.batch_mixing = batch_mixing if batch_mixing is not None and batch_mixing.enabled else None
        self.channels_last = channels_last
        if channels_last:
            self.backbone.to(memory_format=torch.channels_last)
        self.backbone_features = compiled(backbone.forward_features, compile)
        # Validated, tested and deployed with the averaged weights (swapped in, see weight_ema.py).
        self.weight_ema = WeightEMA(self._trained(), ema_decay) if ema_decay > 0 else None
        self.train_metrics = ConfusionMetrics(num_classes, prefix="train/")
        self.val_metrics = ConfusionMetrics(num_classes, prefix="val/")
        self.test_metrics = ConfusionMetrics(num_classes, prefix="test/")
        self._loss_sums: dict[str, tuple[torch.Tensor, int]] = {}

    # --- the build protocol (visionlab.modules.base)

    @classmethod
    def needs_backbone(cls, model_cfg: DictConfig) -> bool:
        """The classifier is a backbone with a new head."""
        return True

    @classmethod
    def data_config(cls, cfg: DictConfig, backbone: Backbone) -> DataConfig:
        """The backbone's input: its size, channels, mean and std decide the data's transforms."""
        return backbone.data_config

    @classmethod
    def from_run(cls, cfg: DictConfig, datamodule, backbone: Backbone) -> ClassifierModule:
        """The configured classifier on ``backbone`` for the data's classes, owning the ``freeze``
        group's plan (``freeze=auto`` is told the train-set size, which its choice needs)."""
        shape = getattr(datamodule, "sample_shape", None)  # points, not images (data=toy2d)
        if shape is not None:
            raise UserError(f"data={cfg.data._target_.rsplit('.', 2)[-2]} holds {shape[0]}-D "
                            "points for model=gan (e.g. experiment=gan_toy2d), not images a classifier can "
                            "train on")
        return instantiate(
            cfg.model, backbone=backbone, num_classes=datamodule.num_classes,
            class_names=datamodule.class_names, optimizer=instantiate(cfg.optimizer),
            scheduler=instantiate(cfg.scheduler.scheduler) if cfg.scheduler.scheduler else None,
            scheduler_interval=cfg.scheduler.interval, scheduler_monitor=cfg.scheduler.monitor,
            freeze_plan=freeze_plan_for(cfg, datamodule),
            batch_mixing=instantiate(cfg.mixup, seed=cfg.seed) if cfg.get("mixup") else None)

    @classmethod
    def summary_keys(cls, cfg: DictConfig) -> tuple[str, ...]:
        """The groups a transfer-learning run is told apart by, the backbone's name and the
        learning rate, batch size, epochs and seed."""
        return ("data", "backbone", "freeze", "optimizer", "model", "mixup", "backbone.name", "optimizer.lr",
                "data.batch_size", "trainer.max_epochs", "seed")

    def prepare_datamodule(self, cfg: DictConfig, datamodule):
        """``datamodule``, or a wrapper serving cached backbone features (the head then trains on them).

        ``data.cache_features``: ``true`` caches (an error when the features would go stale),
        ``false`` never, ``auto`` when valid and small enough (the log says which and why). The
        cache lives under ``paths.data_dir/feature_cache``, shared by every run.
        """
        from visionlab.finetune import feature_cache

        choice, max_epochs = datamodule.cache_features, cfg.trainer.get("max_epochs")
        if choice is True and self.batch_mixing is not None:
            raise UserError(f"data.cache_features=true trains the head on cached backbone features, and "
                            f"{self.batch_mixing.describe()} mixes the images: set mixup=none, or "
                            "data.cache_features=false (or auto)")
        if choice == "auto" and self.batch_mixing is not None:
            choice = False
            log.info("feature cache (data.cache_features=auto): off: %s mixes the images",
                     self.batch_mixing.describe())
        elif choice == "auto":
            choice, reason = feature_cache.auto_cache_decision(
                datamodule, self.freeze_plan, self.backbone, self.head.in_features, max_epochs)
            log.info("feature cache (data.cache_features=auto): %s: %s", "on" if choice else "off", reason)
        if not choice:
            return datamodule
        cache_dir = Path(cfg.paths.data_dir) / "feature_cache"
        cached = feature_cache.wrap_with_feature_cache(datamodule, self.backbone, self.head.pool,
                                                       self.freeze_plan, cache_dir, max_epochs)
        self.inputs_are_features = True
        return cached

    @classmethod
    def run_callbacks(cls, cfg: DictConfig) -> list[L.Callback]:
        """The callback that applies the freeze plan at every epoch start."""
        return [FreezeScheduleCallback()]

    @classmethod
    def from_checkpoint(cls, state: dict, checkpoint: Path, run_config) -> ClassifierModule:
        """The classifier of ``state`` with every weight from the checkpoint: rebuilt from its
        hyperparameters alone (the backbone's recipe, the head, the classes), or, for a checkpoint
        written before the recipe was recorded, with the backbone, its preprocessing and the head
        from the run's config (``run_config()``) and the cut from :func:`truncation_of`."""
        hparams = state["hyper_parameters"]
        if hparams["backbone"].get("recipe") is not None:
            model = cls(**hparams)
        else:
            cfg = run_config()
            backbone = build_backbone(cfg.backbone, load_weights=False)
            cut = truncation_of(hparams, cfg, backbone, state["state_dict"])
            if cut is not None:
                backbone.truncate(cut)
            model = instantiate(cfg.model, backbone=backbone, num_classes=hparams["num_classes"],
                                class_names=hparams["class_names"], compile=False)
        missing, unexpected = model.load_state_dict(state["state_dict"], strict=False)
        if missing or unexpected:
            raise UserError(f"{checkpoint} does not fit the network its recorded settings build "
                            f"({len(missing)} tensors missing, e.g. {missing[:2]}; {len(unexpected)} "
                            f"unexpected, e.g. {unexpected[:2]}): did the backbone's code change since the "
                            "run?")
        return model.eval()

    # --- what it serves (visionlab.modules.capabilities.Classifies)

    @property
    def input_config(self) -> DataConfig:
        """The backbone's input: images are resized and normalised to it."""
        return self.backbone.data_config

    def export_network(self) -> torch.nn.Module:
        """The backbone's features and the head as plain modules (no Lightning state)."""
        return FeaturesThenHead(self.backbone, self.head)

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
        return self._record(loss, logits, y, metrics, stage)

    def _mixed_step(self, batch, batch_idx: int) -> torch.Tensor:
        """Soft-target cross-entropy on the batch's MixUp/CutMix blend."""
        x, y = batch
        mixed = self.batch_mixing(x, y, self.hparams.num_classes, self.hparams.label_smoothing,
                                  self.current_epoch, batch_idx)
        logits = self.logits(mixed.images)
        loss = soft_target_cross_entropy(logits, mixed.targets)
        return self._record(loss, logits, mixed.dominant_labels(y), self.train_metrics, "train")

    def _record(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor,
                metrics: ConfusionMetrics, stage: str) -> torch.Tensor:
        """Add a batch's loss and predictions to the epoch's sums; return the loss."""
        metrics.update(logits.detach(), labels)
        total, count = self._loss_sums.get(stage, (0.0, 0))
        self._loss_sums[stage] = (total + loss.detach() * len(labels), count + len(labels))
        return loss

    def _log_epoch(self, metrics: ConfusionMetrics, stage: str) -> None:
        """Log the epoch's mean loss and metrics (synchronised across processes), then reset them."""
        total, count = self._loss_sums.pop(stage, (None, 0))
        if count == 0:
            return
        self.log(f"{stage}/loss", total / count, prog_bar=True, sync_dist=True)
        self.log_dict(metrics.compute(), prog_bar=stage != "train")
        metrics.reset()

    def _trained(self) -> dict[str, torch.nn.Module]:
        """The modules training changes, which the weight EMA averages."""
        return {"backbone": self.backbone, "head": self.head}

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        """Move the weight EMA after the optimizer step."""
        if self.weight_ema is not None:
            self.weight_ema.update(self._trained(), self.global_step)

    def _swap_ema(self) -> None:
        if self.weight_ema is not None:
            self.weight_ema.swap(self._trained())

    def on_validation_epoch_start(self) -> None:
        """Validate the averaged weights (swapped back at the epoch's end)."""
        self._swap_ema()

    def on_test_epoch_start(self) -> None:
        """Test the averaged weights (swapped back at the epoch's end)."""
        self._swap_ema()

    def adopt_weights(self, averaged: bool = True) -> None:
        """For deployment (eval, predict, export): keep the averaged weights (``averaged``) or the
        trained ones, and drop the other copy (a checkpoint saved afterwards holds the kept ones)."""
        if self.weight_ema is not None and averaged:
            self.weight_ema.copy_into(self._trained())
        self.weight_ema = None
        self.hparams.ema_decay = 0.0  # what it holds now: one set of weights, no average

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        """Cross-entropy on one batch (mixed, with ``batch_mixing``, in the epochs it mixes); loss
        and metrics accumulate over the epoch."""
        if self.batch_mixing is not None and self.batch_mixing.mixes_in_epoch(self.current_epoch):
            loss = self._mixed_step(batch, batch_idx)
        else:
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
        self._swap_ema()

    def test_step(self, batch, batch_idx: int) -> None:
        """Test loss and metrics, aggregated over the epoch."""
        self._step(batch, self.test_metrics, "test")

    def on_test_epoch_end(self) -> None:
        """Log the test loss and metrics (the results table then lists test metrics only)."""
        self._log_epoch(self.test_metrics, "test")
        self._swap_ema()

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        """Class probabilities ``(N, num_classes)``."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.logits(x).softmax(dim=-1)

    def configure_optimizers(self):
        """The optimizer over per-stage parameter groups, plus the scheduler if configured."""
        if self.optimizer_factory is None:
            raise UserError("this classifier was rebuilt for inference and has no optimizer: give "
                            "ClassifierModule(..., optimizer=functools.partial(torch.optim.Adam, lr=1e-3)) "
                            "or resume with train.py ckpt_path=<checkpoint>")
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


def rebuilt_backbone(saved: dict) -> Backbone:
    """The backbone a checkpoint's ``hyper_parameters.backbone`` describes (its recipe, cut where the
    trained one was); a UserError for a checkpoint that recorded no recipe."""
    if saved.get("recipe") is None:
        raise UserError(f"the checkpoint records backbone {saved.get('name')!r} without its recipe (written "
                        "before checkpoints were self-contained, or a backbone built by hand): load it with "
                        "visionlab.load(<run>/checkpoints/<file>.ckpt) from its run folder, with conf/ in "
                        "reach")
    return backbone_from_recipe(saved["recipe"], saved.get("truncate_after"))


class FeaturesThenHead(torch.nn.Module):
    """A classifier as plain modules: ``head(backbone.forward_features(images))``, the logits."""

    def __init__(self, backbone: Backbone, head: ClassifierHead) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, num_classes)`` logits for preprocessed images ``(N, C, H, W)``."""
        return self.head(self.backbone.forward_features(images))


def truncation_of(hparams: dict, cfg: DictConfig, backbone, state_dict: dict) -> str | None:
    """The stage after which the run's freeze plan cut the backbone, or None.

    Recorded in the checkpoint (``hyper_parameters.backbone.truncate_after``); checkpoints
    written before that was recorded give it through the run's ``freeze.truncate_after``, or,
    when the plan chose it itself (``freeze=auto``), through their weights: the last coarse
    stage that has tensors in the checkpoint.
    """
    if "truncate_after" in hparams["backbone"]:
        return hparams["backbone"]["truncate_after"]
    if cfg.freeze.get("truncate_after"):
        return cfg.freeze.truncate_after
    stages = backbone.stages("coarse")
    prefixes = {stage.name: tuple(f"backbone.body.{entry}." for entry in stage.modules) for stage in stages}
    present = [name for name, starts in prefixes.items() if any(key.startswith(starts) for key in state_dict)]
    return present[-1] if present and present[-1] != stages[-1].name else None
