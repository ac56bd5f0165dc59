"""Rebuild a trained classifier, and the data it was trained on, from its checkpoint alone.

A run directory holds everything: ``checkpoints/*.ckpt`` (weights and the class names, read
with ``weights_only=True``: nothing is unpickled) and ``.hydra/overrides.yaml`` (how the run
was composed). Composing ``conf/train.yaml`` with those overrides, plus any the user adds
(``data=image_folder data.root=...``), gives the backbone, its preprocessing, the head and
the freeze plan, so a truncated backbone (``freeze.truncate_after``) is rebuilt as trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from visionlab.checkpoint_header import require_classifier, run_dir_of
from visionlab.errors import UserError, hydra_error_line
from visionlab.finetune.plans import FreezePlan
from visionlab.modules.classifier import ClassifierModule


def read_checkpoint(path: Path) -> dict:
    """The classifier checkpoint at ``path`` (``weights_only=True``), or a UserError saying what it
    is not (:func:`~visionlab.checkpoint_header.require_classifier`)."""
    require_classifier(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a damaged storage; the header already read, nothing is unpickled further
        raise UserError(f"{path}: the checkpoint's tensors cannot be read (a truncated or damaged file): "
                        "use another checkpoint of the run") from err


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


def rebuild_classifier(checkpoint: Path, conf_dir: Path, overrides: list[str] = ()) -> TrainedClassifier:
    """The classifier of ``checkpoint`` with its weights, without touching any data.

    The backbone, its preprocessing and the head come from the run's config; the class
    names and the place the freeze plan cut the backbone from the checkpoint
    (:func:`truncation_of`).
    """
    state = read_checkpoint(checkpoint)
    cfg = run_config(checkpoint, conf_dir, list(overrides))
    hparams = state["hyper_parameters"]
    # Every weight comes from the checkpoint: neither hub weights nor the run's weight file.
    backbone = instantiate(cfg.backbone, pretrained=False, weights=None)
    cut = truncation_of(hparams, cfg, backbone, state["state_dict"])
    model = instantiate(cfg.model, backbone=backbone, num_classes=hparams["num_classes"],
                        class_names=hparams["class_names"], optimizer=instantiate(cfg.optimizer),
                        freeze_plan=FreezePlan(truncate_after=cut))
    mismatch = model.load_state_dict(state["state_dict"], strict=False)
    if mismatch.missing_keys or mismatch.unexpected_keys:
        raise UserError(f"{checkpoint} does not fit the network its run config builds ("
                        f"{len(mismatch.missing_keys)} tensors missing, e.g. {mismatch.missing_keys[:2]}; "
                        f"{len(mismatch.unexpected_keys)} unexpected, e.g. {mismatch.unexpected_keys[:2]}): "
                        "did conf/ or the backbone change since the run?")
    return TrainedClassifier(model.eval(), cfg, run_dir_of(checkpoint))


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


def load_classifier(checkpoint: Path, conf_dir: Path, overrides: list[str] = ()) -> TrainedClassifier:
    """:func:`rebuild_classifier` plus the run's (possibly overridden) data, set up.

    The data's classes must be the checkpoint's, in the same order; otherwise a UserError
    names the difference.
    """
    trained = rebuild_classifier(checkpoint, conf_dir, overrides)
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
