"""The Hydra entry point shared by ``python train.py`` and ``visionlab train``.

Kept free of heavy imports (torch, Lightning): Hydra prints ``--help`` and ``--cfg job``
before the task function runs, and those should answer at once.
"""

from __future__ import annotations

from collections.abc import Callable

import hydra
from omegaconf import DictConfig


def train_task(cfg: DictConfig) -> float | None:
    """Run one training job; a UserError becomes one ``error:`` line and exit code 2."""
    from visionlab.cli.errors import exit_on_user_error
    from visionlab.train import run

    with exit_on_user_error():
        return run(cfg)


def hydra_train_main(conf_dir: str) -> Callable[[], float | None]:
    """``train_task`` wrapped by ``hydra.main`` for the ``train.yaml`` in ``conf_dir``."""
    return hydra.main(version_base="1.3", config_path=conf_dir, config_name="train")(train_task)
