"""Turn a UserError, or Hydra's refusal of a command line, into one line on stderr and exit code 2;
leave every other error alone."""

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


HYDRA_DETAIL = ("full_key:", "object_type=", "reference_type=",
                "Set the environment variable HYDRA_FULL_ERROR")


def hydra_error_line(exc: BaseException) -> str:
    """Hydra's message for a command line it refuses (an unknown key, group option or override
    syntax), and the OmegaConf reason under it, as one line.

    Hydra prints these over 6 to 25 lines: a list of options one per line, the config search path,
    OmegaConf's ``full_key``/``object_type`` lines. Here a list follows its heading on the same
    line, and the search path and internal details are left out.
    """
    from omegaconf.errors import OmegaConfBaseException

    texts = [str(exc)]
    if isinstance(exc.__cause__, OmegaConfBaseException):
        texts.append(str(exc.__cause__))
    entries: list[list[str]] = []  # a line of text, then the items listed under it
    for line in "\n".join(texts).splitlines():
        if line.startswith("Config search path"):
            break
        text = line.strip()
        if not text or text.startswith(HYDRA_DETAIL):
            continue
        if line[:1] in ("\t", " ") and entries and entries[-1][0].endswith(":"):
            entries[-1].append(text)
        else:
            entries.append([text])
    hints = [entry for entry in entries if entry[0].startswith("To append")]  # after the reason
    return "; ".join(entry[0].rstrip(".") + (f" {', '.join(entry[1:])}" if entry[1:] else "")
                     for entry in [e for e in entries if e not in hints] + hints)


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

    from hydra.errors import CompactHydraException, OverrideParseException

    if "HYDRA_FULL_ERROR" in os.environ:
        yield
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    except CompactHydraException as exc:
        hint = (" (a value with spaces, non-ASCII letters or brackets goes in quotes: 'key=\"value\"')"
                if isinstance(exc, OverrideParseException) else "")
        print(f"error: {hydra_error_line(exc)}{hint}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    finally:
        os.environ.pop("HYDRA_FULL_ERROR", None)
