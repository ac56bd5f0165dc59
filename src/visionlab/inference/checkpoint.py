"""A trained module from a checkpoint file or a run folder, and the data a classifier is judged on.

The module comes from the file alone (:func:`visionlab.modules.base.load_module`). A checkpoint
written before checkpoints held their run's config (format 1) is a classifier's exception: its
run is recomposed from ``conf/`` and the run folder's ``.hydra/overrides.yaml``
(:func:`composed_run_config`). The data is the run's, as its config says, with the user's
overrides on top (``data.root=DIR``, or ``data=image_folder ...``, which needs ``conf/``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from visionlab.checkpoint_header import run_checkpoint, run_dir_of
from visionlab.data.image_folder import ImageFolderDataModule
from visionlab.errors import UserError, first_line, hydra_error_line
from visionlab.modules.base import RunModule, load_module
from visionlab.project import find_conf_dir


def load(path: str | Path, device: str | torch.device | None = None, averaged: bool = True,
         conf_dir: Path | None = None) -> RunModule:
    """The module of a checkpoint, or of a run folder's checkpoint (:func:`run_checkpoint`), in eval
    mode on ``device``; with its weight average where the kind keeps one and ``averaged``.
    ``conf_dir`` (default: the project's) is read only for a format-1 classifier checkpoint."""
    checkpoint = run_checkpoint(Path(path))
    return load_module(checkpoint, device, averaged,
                       run_config=lambda: composed_run_config(checkpoint, conf_dir or find_conf_dir(), []))


def composed_run_config(checkpoint: Path, conf_dir: Path, overrides: list[str]) -> DictConfig:
    """The config of the run that wrote ``checkpoint`` recomposed from ``conf_dir`` and its run
    folder's ``.hydra/overrides.yaml``, with ``overrides`` applied on top (a format-1 checkpoint).

    An override that picks another option of a group (``data=image_folder``) replaces the run's
    settings of that group (``data.train_per_class=6`` belongs to the shapes data the run had).
    """
    from hydra import compose, initialize_config_dir
    from hydra.errors import CompactHydraException

    run_dir = run_dir_of(checkpoint)
    saved = run_dir / ".hydra" / "overrides.yaml"
    if not saved.is_file():
        raise UserError(f"{checkpoint} was written before checkpoints held their run's config, and no "
                        f"{saved} is beside it: keep it in its run directory (<run>/checkpoints/*.ckpt "
                        "beside <run>/.hydra/), as train.py wrote it")
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


def with_overrides(saved: dict, overrides: list[str], conf_dir: Path | None) -> DictConfig:
    """A run's saved config with Hydra-style ``overrides``: ``key=value`` sets a key the config has
    (``+key=value`` adds one, ``~key`` removes one); ``group=option`` replaces a group's settings by
    that option's from ``conf_dir`` (with the overrides of that group applied)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    cfg = OmegaConf.create(saved)
    OmegaConf.set_struct(cfg, True)
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException as err:
        raise UserError(f"the overrides do not parse: {first_line(err)}") from None
    groups = {o.key_or_group for o in parsed
              if "." not in o.key_or_group and OmegaConf.is_dict(cfg.get(o.key_or_group))}
    if groups:
        if conf_dir is None:
            raise UserError(f"{', '.join(sorted(groups))}=<option> picks a config group option, which needs "
                            "the project's conf/ (run from the project root), or set its keys (e.g. "
                            "data.root=DIR)")
        from hydra import compose, initialize_config_dir
        from hydra.errors import CompactHydraException

        picked = [o.input_line for o in parsed if o.key_or_group.split(".")[0] in groups]
        try:
            with initialize_config_dir(config_dir=str(conf_dir.resolve()), version_base="1.3"):
                composed = compose(config_name="train", overrides=picked)
        except CompactHydraException as err:
            raise UserError(f"the overrides do not compose: {hydra_error_line(err)}") from None
        with open_dict(cfg):
            for group in groups:
                cfg[group] = composed[group]
    for override in parsed:
        key = override.key_or_group
        if key.split(".")[0] in groups:
            continue
        try:
            if override.is_delete():
                with open_dict(cfg):
                    parent, _, leaf = key.rpartition(".")
                    (OmegaConf.select(cfg, parent) if parent else cfg).pop(leaf)
            else:
                OmegaConf.update(cfg, key, override.value(), merge=True, force_add=override.is_add())
        except Exception as err:
            raise UserError(f"{override.input_line}: {first_line(err)} (the run's config has no such key: "
                            f"add one with +{key}=...)") from None
    return cfg


def evaluation_data(model: RunModule, overrides: list[str] = (), conf_dir: Path | None = None):
    """The test data of ``model``'s run (its saved config, with ``overrides``), prepared and set up,
    preprocessed as the model expects; its classes must be the model's, in the same order."""
    if model.run_config is None:
        raise UserError("this module holds no run config (it was built by hand, not loaded from a "
                        "checkpoint): evaluate it with visionlab.inference.evaluate.evaluate(model, loader, "
                        "class_names)")
    cfg = with_overrides(model.run_config, list(overrides), conf_dir)
    held_out = {"held_out": True} if another_image_folder(cfg.data, model.run_config.get("data", {})) else {}
    datamodule = instantiate(cfg.data, data_config=model.input_config, augment=None, **held_out)
    datamodule.prepare_data()
    datamodule.setup("test")
    check_classes(model.class_names, list(datamodule.class_names))
    return datamodule


def another_image_folder(data: DictConfig, trained_on: dict) -> bool:
    """Whether ``data`` is an image folder other than the one the run trained on (``trained_on``,
    its saved data config): none of its images were trained on, so all of them can be test data."""
    if "root" not in data or not issubclass(get_class(data._target_), ImageFolderDataModule):
        return False  # e.g. shapes, which has its own test split
    trained_root = trained_on.get("root")
    if trained_root is None:  # the run trained on data of another kind
        return True
    return Path(str(trained_root)).expanduser().resolve() != Path(str(data.root)).expanduser().resolve()


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
