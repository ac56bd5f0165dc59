"""The Hydra entry point shared by ``python train.py`` and ``visionlab train``.

Kept free of heavy imports (torch, Lightning): Hydra prints ``--help`` and ``--cfg job``
before the task function runs, and those should answer at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import hydra
from omegaconf import DictConfig

# Lightning INFO lines a user cannot act on: an advert, and a note about our own model-summary callback.
UNACTIONABLE = ("try installing [litlogger]", "Trainer already configured with model summary callbacks")


class DropUnactionable(logging.Filter):
    """Drops the log records listed in ``UNACTIONABLE``."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a record whose message contains one of ``UNACTIONABLE``."""
        message = record.getMessage()
        return not any(text in message for text in UNACTIONABLE)


def one_console_line_per_record() -> None:
    """Print every Lightning line once, through Hydra's handlers (console and ``train.log``).

    Lightning gives its loggers a console handler of their own when it is imported before
    logging is configured; under Hydra, whose root handlers also receive the records, every
    line appeared twice.
    """
    import lightning  # noqa: F401  (adds those handlers on import: import it first, then remove them)

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:
                logger.removeHandler(handler)
        logger.propagate = True
    for handler in logging.getLogger().handlers:
        handler.addFilter(DropUnactionable())


def train_task(cfg: DictConfig) -> float | None:
    """Run one training job; a UserError becomes one ``error:`` line and exit code 2."""
    from visionlab.cli.errors import exit_on_user_error
    from visionlab.train import run

    one_console_line_per_record()
    with exit_on_user_error():
        return run(cfg)


def hydra_train_main(conf_dir: str) -> Callable[[], float | None]:
    """``train_task`` wrapped by ``hydra.main`` for the ``train.yaml`` in ``conf_dir``."""
    return hydra.main(version_base="1.3", config_path=conf_dir, config_name="train")(train_task)
