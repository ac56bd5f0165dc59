"""A finished run's hyperparameters and final metrics, for TensorBoard's HPARAMS plugin.

Each run writes one hparams summary at its end (the LightningModules save their own
hyperparameters with ``logger=False``, so Lightning writes none at fit start and no
``hp_metric``): the table, parallel-coordinates and scatter views then compare the runs of
a sweep, or of many days, by what was overridden and what came out.
"""

from __future__ import annotations

import lightning as L
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

# Always in the HPARAMS table (when set), so every run has the same columns; the overridden keys come first.
KEY_GROUPS = ("data", "backbone", "freeze", "optimizer", "model")
KEY_VALUES = ("backbone.name", "optimizer.lr", "data.batch_size", "trainer.max_epochs", "seed")


def hparams_of(cfg: DictConfig, overrides: list[str], choices: dict[str, str]) -> dict[str, object]:
    """The hyperparameters a run is compared by: its overridden keys (a group as the option
    given, e.g. ``freeze=two_phase``), then the options of :data:`KEY_GROUPS` (``choices``:
    Hydra's runtime choices) and :data:`KEY_VALUES`; values as str, int, float or bool."""
    params: dict[str, object] = {}
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        node = OmegaConf.select(cfg, key, default=value)
        params[key] = node if isinstance(node, (str, int, float, bool)) else value
    for group in KEY_GROUPS:
        if group in choices and group not in params:
            params[group] = str(choices[group])
    for key in KEY_VALUES:
        value = OmegaConf.select(cfg, key, default=None)
        if key not in params and isinstance(value, (str, int, float, bool)):
            params[key] = value
    return params


def log_run_summary(trainer: L.Trainer, cfg: DictConfig, metrics: dict[str, float], seconds: float) -> None:
    """Write the run's hyperparameters and final metrics to TensorBoard's HPARAMS plugin.

    Metrics: ``hparams/best_<monitor>`` (the best checkpoint's score), every ``test/*`` value as
    ``hparams/test_*``, ``hparams/epochs``, ``hparams/wall_time_s``; the hyperparameters include
    ``status`` (``finished`` or ``stopped_early``). The tags are the same in every run.
    """
    loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
    if not loggers:
        return
    hydra = HydraConfig.get() if HydraConfig.initialized() else None
    overrides = list(hydra.overrides.task) if hydra else []
    choices = dict(hydra.runtime.choices) if hydra else {}
    early = any(getattr(c, "stopped_epoch", 0) for c in trainer.early_stopping_callbacks)
    params = {**hparams_of(cfg, overrides, choices), "status": "stopped_early" if early else "finished"}
    summary = {"hparams/epochs": float(trainer.current_epoch), "hparams/wall_time_s": round(seconds, 1)}
    checkpoint = trainer.checkpoint_callback
    if cfg.get("monitor") and checkpoint is not None and checkpoint.best_model_score is not None:
        summary[f"hparams/best_{cfg.monitor.replace('/', '_')}"] = float(checkpoint.best_model_score)
    summary.update({f"hparams/{k.replace('/', '_')}": v for k, v in metrics.items() if k.startswith("test/")})
    for logger in loggers:
        logger.log_hyperparams(params, summary)
