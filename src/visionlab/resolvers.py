"""OmegaConf resolvers the configs use, registered when visionlab is imported.

- ``${optuna_direction:${mode}}``: ``maximize`` for ``max``, ``minimize`` for ``min``.
- ``${run_name:}``: what distinguishes this run, for its TensorBoard run name: the job's
  command-line overrides as ``key=value,key=value`` (Hydra's ``override_dirname``), shortened
  to :data:`MAX_RUN_NAME` characters with a hash of the whole when longer (so two long names
  stay distinct); empty outside a Hydra job or without overrides.
"""

from __future__ import annotations

import hashlib

from omegaconf import OmegaConf

MAX_RUN_NAME = 200  # a file name: at most 255 bytes


def optuna_direction(mode: str) -> str:
    """The Optuna study direction for ``mode`` (``max`` or ``min``)."""
    return {"max": "maximize", "min": "minimize"}[mode]


def shorten(name: str, limit: int = MAX_RUN_NAME) -> str:
    """``name``, or its first characters plus an 8-character hash of all of it when too long."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9]}~{digest}"


def run_name() -> str:
    """The current Hydra job's overrides as one short, readable name ("" if none)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return ""
    return shorten(HydraConfig.get().job.override_dirname)


OmegaConf.register_new_resolver("optuna_direction", optuna_direction, replace=True)
OmegaConf.register_new_resolver("run_name", run_name, replace=True)
