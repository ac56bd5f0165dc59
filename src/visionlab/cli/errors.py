"""Turn a UserError anywhere in a call chain into one line on stderr and exit code 2."""

from __future__ import annotations

import contextlib
import sys

from visionlab.errors import UserError

EXIT_USER_ERROR = 2


def find_user_error(exc: BaseException | None) -> UserError | None:
    """The UserError that caused ``exc`` (Hydra wraps errors raised while instantiating)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, UserError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


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
