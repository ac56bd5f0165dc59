"""Turn a UserError, or Hydra's refusal of a command line, into one line on stderr and exit code 2;
leave every other error alone."""

from __future__ import annotations

import contextlib
import sys

from visionlab.errors import UserError, hydra_error_line

EXIT_USER_ERROR = 2


def find_user_error(exc: BaseException | None) -> UserError | None:
    """``exc`` if it is a UserError, or the UserError that Hydra wrapped while instantiating.

    Only Hydra's ``InstantiationException`` is looked through (it re-raises ``from`` the
    original error). An exception merely raised *while handling* a UserError (its
    ``__context__``) is a real failure and keeps its traceback.
    """
    from hydra.errors import InstantiationException

    while isinstance(exc, InstantiationException):
        exc = exc.__cause__
    return exc if isinstance(exc, UserError) else None


@contextlib.contextmanager
def exit_on_user_error():
    """Run the block; on a UserError print ``error: <message>`` and exit with code 2."""
    try:
        yield
    except Exception as exc:
        user_error = find_user_error(exc)
        if user_error is None:
            raise
        print(f"error: {user_error}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


@contextlib.contextmanager
def hydra_refusals_as_one_line():
    """Run a ``hydra.main`` function so that a command line Hydra refuses is one ``error:`` line and
    exit code 2; crashes keep their traceback.

    Hydra prints its own errors over many lines and exits 1, the code it also uses for a crash. With
    ``HYDRA_FULL_ERROR=1`` set for the call, Hydra raises instead, and its ``CompactHydraException``
    (composition, missing option, override syntax) is told apart from everything else. A user who
    set ``HYDRA_FULL_ERROR`` themselves gets Hydra's behaviour unchanged.
    """
    import os

    from hydra.errors import CompactHydraException, InstantiationException, OverrideParseException

    if "HYDRA_FULL_ERROR" in os.environ:
        yield
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    except CompactHydraException as exc:
        if isinstance(exc, InstantiationException):  # raised by a constructor: a bug keeps its traceback
            raise
        hint = (" (a value with spaces, non-ASCII letters or brackets goes in quotes: 'key=\"value\"')"
                if isinstance(exc, OverrideParseException) else "")
        print(f"error: {hydra_error_line(exc)}{hint}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    finally:
        os.environ.pop("HYDRA_FULL_ERROR", None)
