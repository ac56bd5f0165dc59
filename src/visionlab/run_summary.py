"""A finished run's hyperparameters and final metrics, for TensorBoard's HPARAMS plugin.

Each run writes its session (start: the hyperparameters; end: the status) at its end, with its
results as scalars, into a folder of its own beside the training curves (``<log dir>/hparams``):
TensorBoard takes a session's metrics from every scalar under the session's folder, sorted by
name, and checks the first five; in the training run's folder those were ``epoch`` and the
``freeze/*`` counters. In its own folder the session holds only results, named so that they sort
first: ``hparams/best_<monitor>``, ``hparams/test_*``, ``hparams/val_*``, then ``run/epochs`` and
``run/wall_time_s``. The LightningModules save their own hyperparameters with ``logger=False``,
so Lightning writes none at fit start and no ``hp_metric``. No run writes an *experiment*
summary: TensorBoard then takes the whole table's columns from that one run, and stops telling
which keys differ (FIELD_NOTES: TensorBoard's hparams plugin). Without one, it computes the
experiment from every session in view: the union of the keys and metrics, the keys that differ
across the runs listed (and checked) first.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.loggers import MLFlowLogger, TensorBoardLogger, WandbLogger
from omegaconf import DictConfig, OmegaConf

from visionlab.overrides import has_effect


def plain(value) -> str | int | float | bool | None:
    """``value`` as TensorBoard's HPARAMS takes it: a scalar as is, a list as its text, else None."""
    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)) or OmegaConf.is_list(value):
        return str(list(value))
    return None


def hparams_of(cfg: DictConfig, overrides: list[str], choices: dict[str, str],
               keys: tuple[str, ...]) -> dict[str, object]:
    """The hyperparameters a run is compared by: its overridden keys that can change its results (a
    group as the option given, e.g. ``freeze=two_phase``), then its model kind's ``keys`` (the module class's
    :meth:`~visionlab.modules.base.RunModule.summary_keys`: a key without a dot is a group's
    option, from Hydra's runtime ``choices``); values as str, int, float or bool."""
    params: dict[str, object] = {}
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if not has_effect(key):  # where it logs or writes, what the console shows
            continue
        node = plain(OmegaConf.select(cfg, key, default=value))
        params[key] = value if node is None else node
    for key in keys:
        value = choices[key] if key in choices else plain(OmegaConf.select(cfg, key, default=None))
        if key not in params and value is not None:
            params[key] = value
    return params


def log_run_summary(trainer: L.Trainer, cfg: DictConfig, metrics: dict[str, float], seconds: float,
                    keys: tuple[str, ...]) -> None:
    """Write the run's hyperparameters (:func:`hparams_of` over ``keys``) and final metrics to
    TensorBoard's HPARAMS plugin, and the same to MLflow and W&B when they log the run.

    Metrics: ``hparams/best_<monitor>`` (the best checkpoint's score), every final ``val/*`` and
    ``test/*`` result as ``hparams/val_*``, ``hparams/test_*`` (not the image counts behind them),
    ``run/epochs``, ``run/wall_time_s``; the hyperparameters include ``status`` (``finished`` or
    ``stopped_early``).
    """
    if not trainer.loggers:
        return
    hydra = HydraConfig.get() if HydraConfig.initialized() else None
    overrides = list(hydra.overrides.task) if hydra else []
    choices = dict(hydra.runtime.choices) if hydra else {}
    early = any(getattr(c, "stopped_epoch", 0) for c in trainer.early_stopping_callbacks)
    params = {**hparams_of(cfg, overrides, choices, keys), "status": "stopped_early" if early else "finished"}
    summary = {}
    checkpoint = trainer.checkpoint_callback
    if cfg.get("monitor") and checkpoint is not None and checkpoint.best_model_score is not None:
        summary[f"hparams/best_{cfg.monitor.replace('/', '_')}"] = float(checkpoint.best_model_score)
    summary.update({f"hparams/{k.replace('/', '_')}": v for k, v in metrics.items()
                    if k.split("/")[0] in ("val", "test") and not k.endswith(("_running", "_samples"))})
    summary |= {"run/epochs": float(trainer.current_epoch), "run/wall_time_s": round(seconds, 1)}
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            write_hparams_session(logger, params, summary, trainer.global_step)
        elif isinstance(logger, (MLFlowLogger, WandbLogger)):  # the same params and results as HPARAMS
            logger.log_hyperparams(params)
            logger.log_metrics(summary, step=trainer.global_step)
        if isinstance(logger, MLFlowLogger):
            share_mlflow_view(logger, params, summary)
        if isinstance(logger, WandbLogger):
            logger.experiment.finish()  # the offline run's file complete, for `wandb sync`


# MLflow's shared view of an experiment's runs table (``?viewStateShareKey=visionlab`` in its URL).
MLFLOW_VIEW = "visionlab"


def share_mlflow_view(logger: MLFlowLogger, params: dict, summary: dict[str, float]) -> None:
    """The experiment's runs table as MLflow's UI opens it under ``viewStateShareKey=visionlab``:
    the results and the params every run of the experiment logged, as columns (the union over
    its runs, kept in the experiment's ``mlflow.sharedViewState.visionlab`` tag)."""
    import json

    client, experiment = logger.experiment, logger.experiment_id
    tag = f"mlflow.sharedViewState.{MLFLOW_VIEW}"
    shared = client.get_experiment(experiment).tags.get(tag)
    columns = json.loads(shared).get("selectedColumns", []) if shared else []
    wanted = [*(f"metrics.`{key}`" for key in summary if key.startswith("hparams/")),
              *(f"params.`{key}`" for key in params)]
    columns += [column for column in wanted if column not in columns]
    client.set_experiment_tag(experiment, tag, json.dumps({"selectedColumns": columns}))


SESSION_FOLDER = "hparams"  # beside the training curves, under the TensorBoard run's folder


def write_hparams_session(logger: TensorBoardLogger, params: dict, summary: dict[str, float],
                          step: int) -> None:
    """The run's session (start: ``params``; end: its status) and ``summary`` as scalars, in
    ``<log dir>/hparams`` without an experiment summary (see the module's docstring)."""
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    _, session_start, session_end = hparams(params, summary)
    with SummaryWriter(str(Path(logger.log_dir) / SESSION_FOLDER)) as writer:
        for tag, value in summary.items():
            writer.add_scalar(tag, value, step)
        file_writer = writer._get_file_writer()
        file_writer.add_summary(session_start)
        file_writer.add_summary(session_end)
