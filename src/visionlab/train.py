"""Orchestration of one training run: config in, fitted and tested model out.

``run(cfg)`` instantiates the Trainer, the DataModule (prepared the Lightning way), the
LightningModule, callbacks and loggers from the composed Hydra config, fits, tests the best
checkpoint and returns the value of ``cfg.optimized_metric`` for sweepers.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.fabric.plugins.environments import LightningEnvironment
from omegaconf import DictConfig

from visionlab.callbacks.epoch_seed import EpochSeedCallback
from visionlab.checkpoint_header import CheckpointHeader
from visionlab.config_targets import check_config_targets
from visionlab.downloads import require_available, use_cache_dir
from visionlab.errors import UserError, first_line
from visionlab.modules.base import module_class
from visionlab.nets.factory import build_backbone
from visionlab.prefetch import run_files
from visionlab.preflight import check_paths, in_sweep
from visionlab.run_summary import log_run_summary

log = logging.getLogger(__name__)


def instantiate_named(group: DictConfig | None) -> list:
    """Instantiate every non-null entry of a dict-of-configs group (callbacks, loggers)."""
    if not group:
        return []
    return [instantiate(conf) for conf in group.values() if conf is not None and "_target_" in conf]


def settle_displays(callbacks: list, trainer_cfg: DictConfig) -> tuple[list, dict[str, bool]]:
    """``callbacks`` and the Trainer switches that make the progress bar and model summary what
    the config says.

    ``trainer.enable_progress_bar=false`` (``enable_model_summary=false``) drops the configured
    one, since Lightning refuses the pair. A display set to null (``callbacks.progress_bar=null``,
    ``callbacks.model_summary=null``) is off: Lightning would otherwise add its default one, a bar
    redrawn 100 times a second or a summary with a column of zero FLOPs.
    """
    from lightning.pytorch.callbacks import ModelSummary, ProgressBar

    switches = {}
    for kind, flag in ((ProgressBar, "enable_progress_bar"), (ModelSummary, "enable_model_summary")):
        if trainer_cfg.get(flag) is False:
            callbacks = [c for c in callbacks if not isinstance(c, kind)]
        elif not any(isinstance(c, kind) for c in callbacks):
            switches[flag] = False
    return callbacks, switches


def displays_only(callbacks: list) -> list:
    """The progress bars and model summaries among ``callbacks``."""
    from lightning.pytorch.callbacks import ModelSummary, ProgressBar

    return [c for c in callbacks if isinstance(c, (ProgressBar, ModelSummary))]


def prepare_and_setup(datamodule: L.LightningDataModule, trainer: L.Trainer) -> None:
    """``prepare_data`` on one process per node, then ``setup("fit")`` on every process.

    The run needs the classes before ``fit`` (they size the head), so it honours Lightning's
    contract itself: processes that Lightning starts (its launcher for ``trainer=ddp`` and
    ``ddp_cpu``) start from inside ``fit``, after the main process has prepared the data,
    so they only set up; processes started together by an external launcher (torchrun,
    SLURM) join the process group now, and the others wait at a barrier while local rank 0
    downloads or generates the data.
    """
    env = getattr(trainer.strategy, "cluster_environment", None)
    started_together = (trainer.world_size > 1 and env is not None and env.creates_processes_externally
                        and not isinstance(env, LightningEnvironment))
    if started_together:
        trainer.strategy.setup_environment()  # Lightning's own call in fit() then finds it done
    if trainer.local_rank == 0:
        datamodule.prepare_data()
    if started_together:
        trainer.strategy.barrier("prepare_data")
    datamodule.setup("fit")


LIGHTNING_DIR = Path(L.__file__).resolve().parent


def raised_by_lightning(err: BaseException) -> bool:
    """Whether ``err`` was raised by Lightning's own code (its innermost frame is in the package):
    Lightning checks its settings against the data and model (``val_check_interval`` beyond the
    epoch, a ``monitor`` never logged, a precision or accelerator this machine lacks) and raises
    plain ``ValueError``/``RuntimeError`` for them."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(LIGHTNING_DIR)


@contextlib.contextmanager
def lightning_settings_as_user_errors():
    """A setting Lightning refuses for this data, model or machine (e.g. ``limit_val_batches=0.1`` of
    3 batches, ``trainer.accelerator=gpu`` without one, ``callbacks.early_stopping.monitor`` never
    logged), also when Hydra wrapped it while building the Trainer, as a one-line UserError. An
    error raised anywhere else keeps its traceback: it is a bug, not a setting."""
    from hydra.errors import InstantiationException
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        yield
    except (InstantiationException, MisconfigurationException, ValueError, RuntimeError, TypeError) as err:
        cause = err.__cause__ if isinstance(err, InstantiationException) else err
        if cause is None or isinstance(cause, UserError) or not (
                isinstance(cause, MisconfigurationException) or raised_by_lightning(cause)):
            raise
        raise UserError(f"Lightning rejects the settings: {first_line(cause)}") from err


def metric_value(metrics: dict, name: str, required: bool) -> float | None:
    """``metrics[name]`` as a float; if it was not logged, a UserError when ``required`` (a sweep
    consumes it), else a warning and None: a single run that did what it was told succeeds."""
    if name in metrics:
        return float(metrics[name])
    message = f"optimized_metric='{name}' was not logged; available: {', '.join(sorted(metrics))}"
    if required:
        raise UserError(f"{message} (the sweep optimises it: set optimized_metric=<one of them>)")
    log.warning("%s; nothing consumes it outside a sweep", message)
    return None


def check_resumable(cfg: DictConfig, resumed: CheckpointHeader | None, model: L.LightningModule) -> None:
    """A UserError when ``ckpt_path`` was written by another kind of model than this run builds."""
    if resumed is not None and resumed.kind is not None and resumed.kind != model.kind:
        raise UserError(f"ckpt_path={cfg.ckpt_path} is a {resumed.kind} checkpoint, and this config trains a "
                        f"{model.kind}: resume with the overrides of the run that wrote it (its "
                        ".hydra/overrides.yaml)")


@contextlib.contextmanager
def checkpoint_fit_as_user_error(ckpt_path: str | None):
    """A resumed checkpoint whose tensors do not fit the network this config builds (another
    backbone, head or width) as a one-line UserError rather than PyTorch's key listing."""
    try:
        yield
    except RuntimeError as err:
        if ckpt_path is None or "Error(s) in loading state_dict" not in str(err):
            raise
        raise UserError(f"ckpt_path={ckpt_path} does not fit the network this config builds ("
                        f"{first_line(err).rstrip(':')}): resume with the overrides of the run that wrote it "
                        "(its .hydra/overrides.yaml)") from err


def check_batch_mixing(cfg: DictConfig, model_class: type) -> None:
    """A UserError for a ``mixup`` value out of range, or a blend turned on for a model kind that does
    not train on one, before anything is built."""
    mixing = cfg.get("mixup") or {}
    if mixing:
        instantiate(mixing, seed=0)  # checks its values
    blending = [f"mixup.{key}={mixing[key]}" for key in ("mixup_alpha", "cutmix_alpha") if mixing.get(key)]
    if blending and not model_class.mixes_training_batches:
        raise UserError(f"{blending[0]} mixes a classifier's training batches, and "
                        f"model={model_class.kind} does not train on blends: set mixup=none (a GAN: "
                        "model.diffaugment augments its images)")


def run(cfg: DictConfig) -> float | None:
    """Fit (and by default test) the configured model; return ``cfg.optimized_metric``."""
    resumed = check_paths(cfg)
    check_config_targets(cfg)
    use_cache_dir(cfg.paths.get("cache_dir"))
    require_available(run_files(cfg))  # seconds, not the hub client's minute of retries, when offline
    # Frozen stages keep their BatchNorm in eval mode on purpose (see finetune/callback.py).
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training")
    # Metrics are logged per epoch, so Lightning's hint about log_every_n_steps does not apply;
    # the LeafSpec deprecation comes from inside Lightning.
    warnings.filterwarnings("ignore", message=r"The number of training batches .* logging interval")
    warnings.filterwarnings("ignore", message=r".*LeafSpec.* is deprecated")
    # Lightning's summary sizes the weights at 32 bits under bf16-mixed: the table says nothing else.
    warnings.filterwarnings("ignore", message=r"Precision .* is not supported by the model summary")
    with lightning_settings_as_user_errors():
        L.seed_everything(cfg.seed, workers=True)
    started = time.perf_counter()
    model_class = module_class(cfg.model)
    check_batch_mixing(cfg, model_class)
    model_class.check_run_config(cfg)
    tuner = instantiate(cfg.tune, reference_lr=cfg.optimizer.get("lr")) if cfg.get("tune") else None
    # The backbone first: its data config decides the data's resizing and normalisation.
    backbone = build_backbone(cfg.backbone) if model_class.needs_backbone(cfg.model) else None
    datamodule = instantiate(cfg.data, data_config=model_class.data_config(cfg, backbone),
                             augment=instantiate(cfg.augment))
    seeding = [EpochSeedCallback(cfg.seed)] if cfg.seed is not None else []
    configured, display_switches = settle_displays(instantiate_named(cfg.get("callbacks")), cfg.trainer)
    if tuner is not None:  # the range test: the run's displays, none of its checkpoints or early stopping
        configured = [*displays_only(configured), tuner]
    callbacks = [*seeding, *model_class.run_callbacks(cfg), *configured]
    loggers = instantiate_named(cfg.get("logger"))
    with lightning_settings_as_user_errors():
        trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                         **display_switches,
                                         **(tuner.trainer_options() if tuner is not None else {}))

    prepare_and_setup(datamodule, trainer)  # the classes and sample shape the module is built for
    model = model_class.from_run(cfg, datamodule, backbone)
    model.remember_run_config(cfg)  # every checkpoint holds it: the file alone rebuilds the model
    datamodule = model.prepare_datamodule(cfg, datamodule)
    check_resumable(cfg, resumed, model)
    if tuner is not None:
        with lightning_settings_as_user_errors():
            trainer.fit(model, datamodule=datamodule)
        tuner.report(trainer, Path(cfg.paths.output_dir), cfg.optimizer.get("lr"))
        return None

    with lightning_settings_as_user_errors(), checkpoint_fit_as_user_error(cfg.ckpt_path):
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}

    if cfg.test_after_fit:
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if not best:
            log.warning("no best checkpoint was saved: testing the final weights")
        with lightning_settings_as_user_errors():
            trainer.test(model, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
        if best:
            log.info("best checkpoint: %s", best)

    log_run_summary(trainer, cfg, metrics, time.perf_counter() - started, model_class.summary_keys(cfg))
    log.info("results: %s", ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())
                                       if k.split("/")[0] in ("train", "val", "test")
                                       and not k.endswith("_running")))
    if not cfg.get("optimized_metric"):
        return None
    return metric_value(metrics, cfg.optimized_metric, required=in_sweep())
