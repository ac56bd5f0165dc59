"""What a training run can learn before torch and Lightning load (several seconds): whether
it is a job of a sweep, and whether the files its config names exist. ``train_task`` asks
first, so a mistyped path fails in about a second; :func:`visionlab.train.run` asks again for
callers that skip the entry point."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from visionlab.errors import UserError


def in_sweep() -> bool:
    """Whether this run is a job of a Hydra multirun (grid sweep, Optuna search)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def check_paths(cfg: DictConfig) -> None:
    """Raise a UserError when ``ckpt_path`` names no file."""
    if cfg.ckpt_path is not None and not Path(cfg.ckpt_path).is_file():
        raise UserError(f"ckpt_path={cfg.ckpt_path} does not exist: give the path of a .ckpt file "
                        "(e.g. outputs/<date>/<time>/checkpoints/last.ckpt)")
