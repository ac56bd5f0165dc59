"""What a training run can learn before torch and Lightning load (several seconds): whether
it is a job of a sweep, and whether the checkpoint it resumes exists and is one. ``train_task`` asks
first, so a mistyped path fails in about a second; :func:`visionlab.train.run` asks again for
callers that skip the entry point."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from visionlab.checkpoint_header import CheckpointHeader, read_header
from visionlab.errors import UserError


def in_sweep() -> bool:
    """Whether this run is a job of a Hydra multirun (grid sweep, Optuna search)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def check_paths(cfg: DictConfig) -> CheckpointHeader | None:
    """The header of the checkpoint ``ckpt_path`` names (None without one), or a UserError when it
    names no file or a file that is no checkpoint (a mistyped path, a README, a folder)."""
    if cfg.ckpt_path is None:
        return None
    path = Path(cfg.ckpt_path)
    if not path.exists():
        raise UserError(f"ckpt_path={cfg.ckpt_path} does not exist: give the path of a .ckpt file "
                        "(e.g. outputs/<date>/<time>/checkpoints/last.ckpt)")
    try:
        return read_header(path, "the checkpoint of the run to resume")
    except UserError as err:
        raise UserError(f"ckpt_path={err}") from None
