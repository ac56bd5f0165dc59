"""OmegaConf resolvers the configs use, registered when visionlab is imported.

- ``${optuna_direction:${mode}}``: ``maximize`` for ``max``, ``minimize`` for ``min``.
- ``${claim_dir:<path>}``: ``<path>``, created now, or ``<path>_2``, ``_3``... when another run
  already has it (two runs started in the same second would otherwise share one run directory,
  and the second would overwrite the first's config and log).
- ``${run_label:}``: ``${run_name:}``, or ``default`` for a run without overrides (a name for
  MLflow and W&B, which would otherwise make one up).
- ``${run_name:}``: what distinguishes this run, for its TensorBoard run name: the job's
  command-line overrides as ``key=value,key=value`` (Hydra's ``override_dirname``), shortened
  to :data:`MAX_RUN_NAME` characters with a hash of the whole when longer (so two long names
  stay distinct); empty outside a Hydra job or without overrides.
"""

from __future__ import annotations

import hashlib
import itertools
import os

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


CLAIM_PREFIX = "VISIONLAB_CLAIMED_DIR_"


def _claim_key(base: str) -> str:
    return CLAIM_PREFIX + hashlib.sha1(base.encode()).hexdigest()[:16]


def claim_dir(base: str) -> str:
    """``base`` or the first free ``base_<n>``, created here (``mkdir`` is atomic, so two processes
    never get the same one).

    The answer is kept in this process's environment until :func:`release_claims`: Hydra reads its
    run and sweep directories more than once, and the jobs a launcher starts in other processes
    (joblib, SLURM) inherit it, so a sweep's jobs land in the sweep directory their parent claimed.
    """
    key = _claim_key(base)
    if key not in os.environ:
        for number in itertools.count(1):
            candidate = base if number == 1 else f"{base}_{number}"
            os.makedirs(os.path.dirname(candidate) or ".", exist_ok=True)
            try:
                os.mkdir(candidate)
            except FileExistsError:
                continue
            os.environ[key] = candidate
            break
    return os.environ[key]


def release_claims() -> None:
    """Forget the directories claimed so far: the next run in this process (a test, a notebook)
    claims its own."""
    for key in [k for k in os.environ if k.startswith(CLAIM_PREFIX)]:
        del os.environ[key]


def run_label() -> str:
    """:func:`run_name`, or ``default`` when the run overrode nothing."""
    return run_name() or "default"


OmegaConf.register_new_resolver("claim_dir", claim_dir, replace=True)
OmegaConf.register_new_resolver("run_label", run_label, replace=True)
OmegaConf.register_new_resolver("optuna_direction", optuna_direction, replace=True)
OmegaConf.register_new_resolver("run_name", run_name, replace=True)
