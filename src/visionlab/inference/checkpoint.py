"""Rebuild a trained module from its checkpoint alone, and a classifier's data.

Any kind: the checkpoint records its model kind (and the class's import path), and that class
rebuilds itself (:meth:`visionlab.modules.base.RunModule.from_checkpoint`). A classifier also
needs its run's config. A run directory holds everything: ``checkpoints/*.ckpt`` (weights and
the class names, read with ``weights_only=True``: nothing is unpickled) and
``.hydra/overrides.yaml`` (how the run was composed). Composing ``conf/train.yaml`` with those
overrides, plus any the user adds (``data=image_folder data.root=...``), gives the backbone, its
preprocessing, the head and the freeze plan, so a truncated backbone is rebuilt as trained.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from visionlab.checkpoint_header import CheckpointHeader, require_classifier, require_samplable, run_dir_of
from visionlab.errors import UserError, hydra_error_line
from visionlab.modules.base import RunModule, kind_class
from visionlab.modules.classifier import ClassifierModule


def read_checkpoint(path: Path) -> dict:
    """The checkpoint at ``path`` (``weights_only=True``), whose header the caller has read (it says
    what the file is not, before torch loads: :mod:`visionlab.checkpoint_header`)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a damaged storage; the header already read, nothing is unpickled further
        raise UserError(f"{path}: the checkpoint's tensors cannot be read (a truncated or damaged file): "
                        "use another checkpoint of the run") from err


def rebuild(checkpoint: Path, header: CheckpointHeader, conf_dir: Path | None = None,
            overrides: list[str] = ()) -> tuple[RunModule, Callable[[], DictConfig]]:
    """The module of ``checkpoint`` with its weights, in eval mode, rebuilt by the class of the kind
    it records; and the (cached) composer of its run's config (``conf_dir`` and ``overrides``)."""
    state = read_checkpoint(checkpoint)
    module_class = kind_class(header.kind, state.get("visionlab_target"))

    @functools.cache
    def config() -> DictConfig:
        if conf_dir is None:
            raise UserError(f"{checkpoint}: rebuilding a {header.kind} needs the project's conf/ folder")
        return run_config(checkpoint, conf_dir, list(overrides))

    return module_class.from_checkpoint(state, checkpoint, config), config


def run_config(checkpoint: Path, conf_dir: Path, overrides: list[str]) -> DictConfig:
    """The config of the run that wrote ``checkpoint``, with ``overrides`` applied on top.

    An override that picks another option of a group (``data=image_folder``) replaces the run's
    settings of that group (``data.train_per_class=6`` belongs to the shapes data the run had).
    """
    from hydra.errors import CompactHydraException

    run_dir = run_dir_of(checkpoint)
    saved = run_dir / ".hydra" / "overrides.yaml"
    if not saved.is_file():
        raise UserError(f"{checkpoint}: no {saved}; the checkpoint must sit in its run directory "
                        "(<run>/checkpoints/*.ckpt beside <run>/.hydra/), as train.py wrote it")
    regrouped = {o.split("=")[0] for o in overrides if "=" in o and "." not in o.split("=")[0]}
    run_overrides = [str(o) for o in OmegaConf.load(saved)
                     if str(o).split("=")[0].split(".")[0].lstrip("+~") not in regrouped]
    try:
        with initialize_config_dir(config_dir=str(conf_dir.resolve()), version_base="1.3"):
            cfg = compose(config_name="train", overrides=[*run_overrides, *overrides])
    except CompactHydraException as err:
        raise UserError(f"the overrides do not compose with the run's: {hydra_error_line(err)}") from None
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
    return cfg


@dataclass
class TrainedClassifier:
    """A classifier rebuilt from a checkpoint, in eval mode, with its run's config; ``datamodule``
    is set up only when the data was asked for."""

    model: ClassifierModule
    cfg: DictConfig
    run_dir: Path
    datamodule: object | None = None

    @property
    def class_names(self) -> list[str]:
        """The classes the model predicts, in output order."""
        return list(self.model.hparams.class_names)


def load_generator(checkpoint: Path) -> RunModule:
    """The module of a checkpoint ``visionlab sample`` can use (any kind that records sample
    options: GAN, LAPGAN, SRGAN, inpainting, or a kind of one's own), rebuilt from its
    hyperparameters alone with its generator's weights, in eval mode."""
    model, _ = rebuild(checkpoint, require_samplable(checkpoint))
    return model


def rebuild_classifier(checkpoint: Path, conf_dir: Path, overrides: list[str] = (), averaged: bool = True
                       ) -> TrainedClassifier:
    """The classifier of ``checkpoint`` with its weights, without touching any data: the weight EMA
    when the run kept one (``model.ema_decay``) and ``averaged``, else the trained weights."""
    model, config = rebuild(checkpoint, require_classifier(checkpoint), conf_dir, overrides)
    model.adopt_weights(averaged)
    return TrainedClassifier(model, config(), run_dir_of(checkpoint))


def load_classifier(checkpoint: Path, conf_dir: Path, overrides: list[str] = (), averaged: bool = True
                    ) -> TrainedClassifier:
    """:func:`rebuild_classifier` plus the run's (possibly overridden) data, set up.

    The data's classes must be the checkpoint's, in the same order; otherwise a UserError
    names the difference.
    """
    trained = rebuild_classifier(checkpoint, conf_dir, overrides, averaged)
    datamodule = instantiate(trained.cfg.data, data_config=trained.model.backbone.data_config, augment=None)
    datamodule.prepare_data()
    datamodule.setup("test")
    check_classes(trained.class_names, list(datamodule.class_names))
    trained.datamodule = datamodule
    return trained


def check_classes(expected: list[str], found: list[str]) -> None:
    """A UserError naming the difference when the data's classes are not the checkpoint's."""
    if expected == found:
        return
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    detail = "; ".join(part for part in (f"missing {', '.join(missing)}" if missing else "",
                                         f"not in the checkpoint: {', '.join(extra)}" if extra else "")
                       if part) or "the same names in another order"
    raise UserError(f"the data's classes differ from the checkpoint's ({detail}): evaluate on data with the "
                    f"classes {', '.join(expected)}")
