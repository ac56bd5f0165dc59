"""What the commands' checks share, made before torch and Lightning load (5-6 s): a missing path, a
file of the wrong kind or a bad value is one line in well under a second. Each command's own
check is in its module (:mod:`visionlab.cli.commands`)."""

from __future__ import annotations

from pathlib import Path

from visionlab.checkpoint_header import run_checkpoint
from visionlab.errors import UserError


def positive(value: int | None, flag: str) -> None:
    """A UserError unless ``value`` is None or at least 1."""
    if value is not None and value < 1:
        raise UserError(f"{flag} {value} must be at least 1")


def free_output(path: Path, force: bool) -> None:
    """A UserError when ``path`` exists and ``--force`` was not given: nothing is overwritten silently."""
    if path.exists() and not force:
        raise UserError(f"{path} exists: give another --out, or --force to replace it")


def chosen_checkpoint(path: Path) -> Path:
    """``path``, or for a run folder the checkpoint it is used through (:func:`run_checkpoint`, said
    aloud)."""
    checkpoint = run_checkpoint(path)
    if checkpoint != path:
        print(f"using {checkpoint}")
    return checkpoint
