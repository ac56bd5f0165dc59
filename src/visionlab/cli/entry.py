"""The Hydra entry point shared by ``python train.py`` and ``visionlab train``.

Kept free of heavy imports (torch, Lightning): Hydra prints ``--help`` and ``--cfg job``
before the task function runs, and those should answer at once.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

import hydra
from omegaconf import DictConfig

log = logging.getLogger(__name__)

EXIT_SWEEP_FAILED = 1  # every job ran, and at least one failed (its status.json says why)

# Lightning INFO lines a user cannot act on: an advert, a note about our own model-summary callback,
# and the TPU line (the GPU line stays: it says whether the run uses one); its MLflow logger's warning
# that the experiment is new (it then creates it, as asked).
UNACTIONABLE = ("try installing [litlogger]", "Trainer already configured with model summary callbacks",
                "TPU available:", "not found. Creating it.")
# Loggers whose INFO lines are chatter of a tool at work (MLflow creating and migrating its SQLite
# store's tables, alembic's migration notes): only their warnings and errors are shown.
CHATTY = ("mlflow.store.db.utils", "alembic")


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
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)


def train_task(cfg: DictConfig) -> float | None:
    """Run one training job; a UserError becomes one ``error:`` line and exit code 2.

    In a multirun a failing job does not stop the sweep (see :mod:`visionlab.cli.sweep`).
    """
    from visionlab.cli.errors import exit_on_user_error
    from visionlab.preflight import check_paths, in_sweep

    sweep = in_sweep()
    if not sweep:  # a sweep job's errors are its status, not the sweep's end (see sweep_job)
        with exit_on_user_error():
            check_paths(cfg)  # before the imports below, which take seconds
    from visionlab.train import run

    one_console_line_per_record()
    if sweep:
        return sweep_job(cfg, run)
    with exit_on_user_error():
        return run(cfg)


def sweep_job(cfg: DictConfig, run: Callable[[DictConfig], float | None]) -> float | None:
    """One job of a sweep: its value, with ``status.json`` in the job directory either way.

    A job that raises is logged (one line for a UserError, the traceback for anything else)
    and returns NaN, which the basic sweeper records and moves past and the Optuna sweeper
    records as a failed trial (hydra_plugins/visionlab_optuna).
    """
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig

    from visionlab.cli.errors import find_user_error
    from visionlab.cli.sweep import write_status
    from visionlab.errors import first_line

    job_dir = Path(cfg.paths.output_dir)
    overrides = list(HydraConfig.get().overrides.task)
    scored = {"metric": cfg.get("optimized_metric"), "mode": cfg.get("mode")}
    try:
        value = run(cfg)
    except Exception as exc:
        user_error = find_user_error(exc)
        if user_error is not None:
            log.error("job %s failed: %s", job_dir.name, user_error)
        else:
            log.exception("job %s failed", job_dir.name)
        write_status(job_dir, "failed", overrides, error=first_line(user_error or exc), **scored)
        return float("nan")
    write_status(job_dir, "finished", overrides, value, **scored)
    return value


def hydra_train_main(conf_dir: str) -> Callable[[], None]:
    """``train_task`` wrapped by ``hydra.main`` for the ``train.yaml`` in ``conf_dir``, with the
    project's exit codes: 2 and one line for a command line Hydra refuses (an unknown key, option or
    override syntax; Hydra itself prints many lines and exits 1, as for a crash), 1 for a sweep in
    which a job failed (after every job has run)."""
    from visionlab.cli.errors import hydra_refusals_as_one_line
    from visionlab.cli.sweep import SweepOutcome
    from visionlab.resolvers import release_claims

    hydra_main = hydra.main(version_base="1.3", config_path=conf_dir, config_name="train")(train_task)

    def main() -> None:
        SweepOutcome.failed = 0
        release_claims()
        with hydra_refusals_as_one_line():
            hydra_main()
        if SweepOutcome.failed:
            sys.exit(EXIT_SWEEP_FAILED)

    return main
