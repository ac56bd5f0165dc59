"""The build protocol every LightningModule a run trains follows, and the registry of model kinds.

A run (``visionlab.train.run``) and the front ends (``eval``, ``predict``, ``export``, ``sample``)
never ask which kind of model they hold. They ask the module class:

- :meth:`RunModule.needs_backbone`: build the ``backbone`` group's network for this config?
- :meth:`RunModule.data_config`: the input the data must deliver (size, channels, scaling);
- :meth:`RunModule.from_run`: the module, built from the composed config, the set-up data and
  the backbone;
- :meth:`RunModule.run_callbacks`, :meth:`RunModule.prepare_datamodule`: the callbacks the run
  needs for it (its freeze plan's) and what the module changes in the data (the classifier's
  feature cache);
- :meth:`RunModule.from_checkpoint`: the module rebuilt from its checkpoint, found by the kind the
  checkpoint records (:func:`kind_class`); Lightning's ``load_from_checkpoint`` goes the same way.

A class registers its kind by definition (:func:`register_kind`, as timm's ``@register_model``)
and declares what it serves (``capabilities``: classify, export, draw, restore; see
:mod:`visionlab.modules.capabilities`). Its checkpoints record the format, the kind, the class's
import path (so a kind defined outside visionlab is found too), the capabilities, the ``visionlab
sample`` options it takes and the run's config: the file alone rebuilds the module.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from visionlab.checkpoint_header import FORMAT, read_header
from visionlab.data_config import DataConfig
from visionlab.errors import UserError
from visionlab.finetune.auto import AutoPlan
from visionlab.finetune.plans import FreezePlan
from visionlab.registry import Registry

MODEL_KINDS: Registry[type[RunModule]] = Registry("model kind")


def register_kind(cls: type[RunModule]) -> type[RunModule]:
    """Class decorator: ``cls`` is the module of the model kind ``cls.kind``."""
    if not cls.kind:
        raise TypeError(f"{cls.__name__} has no kind to register")
    return MODEL_KINDS.register(cls.kind)(cls)


def class_path(cls: type) -> str:
    """``package.module.Class``: what Hydra's ``_target_`` and a checkpoint name a class by."""
    return f"{cls.__module__}.{cls.__qualname__}"


def kind_class(kind: str | None, target: str | None = None, hparams: dict | None = None) -> type[RunModule]:
    """The module class of a model kind: a registered one, or the one its checkpoint's ``target``
    (the class's import path) names; for a checkpoint from before kinds were recorded (``kind``
    None), the registered class that recognises its ``hparams``; a UserError naming the known kinds
    otherwise."""
    import visionlab.modules  # noqa: F401  (the built-in kinds register when their modules load)

    if kind is None:
        recognised = [cls for cls in MODEL_KINDS.values()
                      if cls.legacy_hparams and cls.legacy_hparams <= set(hparams or {})]
        if not recognised:
            raise UserError(f"the checkpoint records no model kind and its hyperparameters are none of: "
                            f"{', '.join(MODEL_KINDS)}'s")
        return recognised[0]
    if kind not in MODEL_KINDS and target:
        from hydra._internal.utils import _locate

        try:
            located = _locate(target)
        except ImportError as err:
            raise UserError(f"the checkpoint's model kind {kind!r} is defined by {target}, which cannot be "
                            f"imported ({str(err).splitlines()[0]})") from None
        if isinstance(located, type) and issubclass(located, RunModule) and located.kind == kind:
            register_kind(located)  # imported earlier, it registered then; this keeps the answer the same
    return MODEL_KINDS.lookup(kind, "the checkpoint's model kind")


def plain_run_config(cfg: DictConfig) -> dict:
    """The composed config of a run as plain values a checkpoint can hold (``weights_only``).
    Interpolations are kept (``data.root: ${paths.data_dir}/shapes`` follows an override of
    ``paths.data_dir``), except under ``paths``, which read the environment and Hydra's run folder
    and are resolved to what this run used, as absolute paths (``PROJECT_ROOT`` defaults to the
    launch folder, and a checkpoint used from another folder must still find the run's data); a
    value that cannot be resolved here is left out."""
    config = OmegaConf.to_container(cfg, resolve=False)
    paths = {}
    for key in cfg.get("paths") or {}:
        try:
            value = cfg.paths[key]  # reading a key resolves it
        except Exception:  # e.g. ${hydra:runtime.output_dir} outside a Hydra job
            continue
        if isinstance(value, str):
            value = str(Path(value).expanduser().absolute())
        paths[key] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    config["paths"] = paths
    return config


def freeze_plan_for(cfg: DictConfig, datamodule) -> FreezePlan:
    """The ``freeze`` group's plan for a run on ``datamodule``; ``freeze=auto`` is told the
    train-set size, which its choice needs."""
    plan = instantiate(cfg.freeze)
    if isinstance(plan, AutoPlan):
        plan.count_train_set(datamodule.train_set)
    return plan


def module_class(model_cfg: DictConfig) -> type[RunModule]:
    """The class ``model._target_`` names; a UserError when it does not follow the build protocol."""
    from hydra.utils import get_class

    target = get_class(model_cfg._target_)
    if not (isinstance(target, type) and issubclass(target, RunModule)):
        raise UserError(f"model._target_={model_cfg._target_} is not a visionlab module: derive it from "
                        "visionlab.modules.base.RunModule (see the README's 'Adding a model kind')")
    return target


class RunModule(L.LightningModule):
    """A LightningModule that a run builds from its composed config and that rebuilds itself from
    its checkpoint (the protocol of this module's docstring)."""

    kind: ClassVar[str] = ""
    # What it serves ("classify", "export", "draw", "restore": visionlab.checkpoint_header.CAPABILITIES),
    # through the mixins of visionlab.modules.capabilities; the front ends check this, recorded in
    # every checkpoint.
    capabilities: ClassVar[frozenset[str]] = frozenset()
    # The hyperparameter names that identify this kind's checkpoints written before kinds were recorded.
    legacy_hparams: ClassVar[frozenset[str]] = frozenset()
    # The `visionlab sample` options this kind takes ("n", "label", "per_class", "input", "mask");
    # none: it is not sampled from (the classifier).
    sample_options: ClassVar[tuple[str, ...]] = ()
    # Whether it trains on the ``mixup`` group's MixUp/CutMix blends (a run of a kind that does
    # not is refused when the group turns a blend on).
    mixes_training_batches: ClassVar[bool] = False
    # The composed config of the run that trained it (plain values, see plain_run_config): set by the
    # run, written into every checkpoint and read back with it; None for a module built by hand.
    run_config: dict | None = None

    @classmethod
    def needs_backbone(cls, model_cfg: DictConfig) -> bool:
        """Whether the run must build the ``backbone`` group's network for ``model_cfg``."""
        return False

    @classmethod
    def check_run_config(cls, cfg: DictConfig) -> None:
        """A UserError for a setting of ``cfg`` this kind cannot run with, found before the run
        builds its data and networks (which take seconds); here: none."""

    @classmethod
    def data_config(cls, cfg: DictConfig, backbone) -> DataConfig:
        """The input the data must deliver to this module (size, channels, mean and std)."""
        raise NotImplementedError

    @classmethod
    def from_run(cls, cfg: DictConfig, datamodule, backbone) -> RunModule:
        """The module for the composed ``cfg``, the set-up ``datamodule`` (its classes, its sample
        shape) and ``backbone`` (None unless :meth:`needs_backbone`)."""
        raise NotImplementedError

    @classmethod
    def summary_keys(cls, cfg: DictConfig) -> tuple[str, ...]:
        """The keys a run of this kind is compared by in TensorBoard's HPARAMS and ``visionlab
        compare`` (a key without a dot is a config group's option): here the data, model and
        optimizer options, every plain ``model.*`` setting (loss, architectures, learning rates,
        EMA, augmentation, image size...), the backbone and freeze plan only when the model uses
        them, and the batch size, epochs and seed."""
        uses_backbone = ("backbone", "freeze") if cls.needs_backbone(cfg.model) else ()
        groups = ("data", "model", "optimizer", *uses_backbone)
        model_keys = tuple(f"model.{key}" for key in cfg.model if not str(key).startswith("_"))
        return (*groups, *model_keys, "data.batch_size", "trainer.max_epochs", "seed")

    def prepare_datamodule(self, cfg: DictConfig, datamodule):
        """The datamodule to fit on: ``datamodule`` itself unless the module serves it otherwise."""
        return datamodule

    @classmethod
    def run_callbacks(cls, cfg: DictConfig) -> list[L.Callback]:
        """Callbacks a run of ``cfg`` needs for this module (e.g. the one applying its freeze plan);
        the ``callbacks`` group adds the rest (checkpoints, the GAN Lab view...)."""
        return []

    @classmethod
    def from_checkpoint(cls, state: dict, checkpoint: Path, run_config: Callable[[], DictConfig]
                        ) -> RunModule:
        """The module of ``state`` (a checkpoint read with ``weights_only=True``) with its weights,
        in eval mode; ``run_config()`` composes the config of the run that wrote it, for kinds
        whose hyperparameters do not say everything."""
        raise NotImplementedError

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, map_location=None, **lightning_options) -> RunModule:
        """Lightning's convention: the module of ``checkpoint_path``, rebuilt from the file alone
        (:func:`load_module`: no optimizer, config or run folder needed), in
        eval mode, on ``map_location`` (a device; default the CPU). A UserError when the file holds
        another kind of module. Lightning's ``hparams_file`` and hyperparameter overrides are not
        taken: the checkpoint says how the module is built."""
        given = {k: v for k, v in lightning_options.items()
                 if v is not None and k not in ("strict", "weights_only")}
        if given:
            raise TypeError(f"{cls.__name__}.load_from_checkpoint rebuilds the module as its checkpoint "
                            f"records it and takes no {', '.join(given)}")
        model = load_module(Path(checkpoint_path), map_location)
        if not isinstance(model, cls):
            raise UserError(f"{checkpoint_path} holds a {type(model).__name__} (model kind {model.kind!r}), "
                            f"not a {cls.__name__}: load it with {type(model).__name__}.load_from_checkpoint "
                            "or visionlab.load")
        return model

    def adopt_weights(self, averaged: bool = True) -> None:
        """For use after training: keep the averaged weights (``averaged``, where the kind keeps an
        average) or the trained ones. Here nothing is averaged."""

    def remember_run_config(self, cfg: DictConfig) -> None:
        """Keep the run's composed config (:func:`plain_run_config`), which every checkpoint records."""
        self.run_config = plain_run_config(cfg)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Record what :func:`kind_class`, the front ends and :meth:`from_checkpoint` need: the
        format, the kind and its class, the capabilities and sample options, the run's config."""
        checkpoint["visionlab_format"] = FORMAT
        checkpoint["visionlab_module"] = self.kind
        checkpoint["visionlab_target"] = class_path(type(self))
        checkpoint["visionlab_capabilities"] = sorted(self.capabilities)
        checkpoint["visionlab_sample_options"] = list(self.sample_options)
        if self.run_config is not None:
            checkpoint["visionlab_config"] = self.run_config


def read_checkpoint(path: Path) -> dict:
    """The checkpoint at ``path`` (``weights_only=True``: nothing in it is executed), whose header the
    caller has read (it says what the file is not, before torch loads)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a damaged storage; the header already read, nothing is unpickled further
        raise UserError(f"{path}: the checkpoint's tensors cannot be read (a truncated or damaged file): "
                        "use another checkpoint of the run") from err


def load_module(checkpoint: Path, device: str | torch.device | None = None, averaged: bool = True,
                run_config: Callable[[], DictConfig] | None = None) -> RunModule:
    """The module of ``checkpoint`` with its weights, in eval mode, on ``device`` (default the CPU):
    the weight average where the kind keeps one and ``averaged`` (the classifier's ``model.ema_decay``,
    a GAN's EMA generator), else the trained weights. ``run_config`` composes the config of a
    format-1 checkpoint's run, for the kinds that need it."""
    header = read_header(checkpoint, "a visionlab checkpoint")
    state = read_checkpoint(checkpoint)
    module_class = kind_class(header.kind, header.target, header.hyper_parameters)
    saved = state.get("visionlab_config")

    @functools.cache
    def config() -> DictConfig:
        if saved is not None:
            return OmegaConf.create(saved)
        if run_config is None:
            raise UserError(f"{checkpoint} was written before checkpoints held their run's config: keep it "
                            "in its run folder (<run>/checkpoints/ beside <run>/.hydra/) and load it with "
                            "the project's conf/ in reach (visionlab.load(path, conf_dir=...))")
        return run_config()

    model = module_class.from_checkpoint(state, checkpoint, config)
    model.run_config = saved if saved is not None else (
        plain_run_config(config()) if config.cache_info().currsize else None)
    model.adopt_weights(averaged)
    return model.to(torch.device(device) if device is not None else "cpu").eval()
