"""Orchestration of one training run: config in, fitted and tested model out.

``run(cfg)`` instantiates the DataModule, the LightningModule, callbacks, loggers and the
Trainer from the composed Hydra config, fits, tests the best checkpoint and returns the
value of ``cfg.optimized_metric`` for sweepers.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from visionlab.errors import UserError
from visionlab.finetune.auto import AutoPlan
from visionlab.finetune.callback import FreezeScheduleCallback
from visionlab.finetune.resume import EpochSeedCallback

log = logging.getLogger(__name__)


def instantiate_named(group: DictConfig | None) -> list:
    """Instantiate every non-null entry of a dict-of-configs group (callbacks, loggers)."""
    if not group:
        return []
    return [instantiate(conf) for conf in group.values() if conf is not None and "_target_" in conf]


def build_model_and_data(cfg: DictConfig):
    """The DataModule (set up, so classes are known), the matching ClassifierModule, the plan.

    ``freeze=auto`` is told the train-set size here; with
    ``data.cache_features=true`` the DataModule is wrapped to serve cached backbone features.
    """
    backbone = instantiate(cfg.backbone)
    datamodule = instantiate(cfg.data, data_config=backbone.data_config, augment=instantiate(cfg.augment))
    datamodule.prepare_data()
    datamodule.setup("fit")
    plan = instantiate(cfg.freeze)
    if isinstance(plan, AutoPlan):
        plan.count_train_set(datamodule.train_set)
    model = instantiate(
        cfg.model,
        backbone=backbone,
        num_classes=datamodule.num_classes,
        class_names=datamodule.class_names,
        optimizer=instantiate(cfg.optimizer),
        scheduler=instantiate(cfg.scheduler.scheduler) if cfg.scheduler.scheduler else None,
        scheduler_interval=cfg.scheduler.interval,
        scheduler_monitor=cfg.scheduler.monitor,
        freeze_plan=plan,
    )
    if datamodule.cache_features:
        from visionlab.data.feature_cache import cache_features

        datamodule = cache_features(datamodule, model, plan, Path(cfg.paths.output_dir) / "feature_cache",
                                    cfg.trainer.get("max_epochs"))
    return datamodule, model, plan


def metric_value(metrics: dict, name: str) -> float:
    """``metrics[name]`` as a float, or a UserError listing the metrics that do exist."""
    if name not in metrics:
        raise UserError(f"optimized_metric='{name}' was not logged; available: {', '.join(sorted(metrics))}")
    return float(metrics[name])


def run(cfg: DictConfig) -> float | None:
    """Fit (and by default test) the configured model; return ``cfg.optimized_metric``."""
    if cfg.ckpt_path is not None and not Path(cfg.ckpt_path).is_file():
        raise UserError(f"ckpt_path={cfg.ckpt_path} does not exist: give the path of a .ckpt file "
                        "(e.g. outputs/<date>/<time>/checkpoints/last.ckpt)")
    # Frozen stages keep their BatchNorm in eval mode on purpose (see finetune/callback.py).
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training")
    L.seed_everything(cfg.seed, workers=True)
    datamodule, model, plan = build_model_and_data(cfg)
    seeding = [EpochSeedCallback(cfg.seed)] if cfg.seed is not None else []
    callbacks = [*seeding, FreezeScheduleCallback(plan), *instantiate_named(cfg.get("callbacks"))]
    loggers = instantiate_named(cfg.get("logger"))
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}

    if cfg.test_after_fit:
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if not best:
            log.warning("no best checkpoint was saved: testing the final weights")
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        if best:
            log.info("best checkpoint: %s", best)

    if not cfg.get("optimized_metric"):
        return None
    return metric_value(metrics, cfg.optimized_metric)
