"""A trained module rebuilt from its checkpoint file: what ``visionlab.load``, Lightning's
``<Module>.load_from_checkpoint`` and ``model.eval_classifier`` share.

The checkpoint's header (:mod:`visionlab.checkpoint_header`) names the kind and its class; the
class rebuilds itself (:meth:`~visionlab.modules.base.RunModule.from_checkpoint`). A checkpoint of
format 2 holds its run's config and rebuilds from the file alone, wherever it was copied; one of
format 1 (written before checkpoints were self-contained) that needs its run's config gets it from
``run_config``, which the caller composes from the run folder.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from visionlab.checkpoint_header import read_header
from visionlab.errors import UserError
from visionlab.modules.base import RunModule, kind_class, plain_run_config


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
                            "in "
                            "its run folder (<run>/checkpoints/ beside <run>/.hydra/) and load it with the "
                            "project's conf/ in reach (visionlab.load(path, conf_dir=...))")
        return run_config()

    model = module_class.from_checkpoint(state, checkpoint, config)
    model.run_config = saved if saved is not None else (
        plain_run_config(config()) if config.cache_info().currsize else None)
    model.adopt_weights(averaged)
    return model.to(torch.device(device) if device is not None else "cpu").eval()
