"""Turn a UserError into one line on stderr and exit code 2; leave every other error alone."""

from __future__ import annotations

import contextlib
import sys

from visionlab.errors import UserError

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
