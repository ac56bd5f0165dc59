"""The one exception type visionlab raises for problems a user can fix."""


class UserError(Exception):
    """A bad config value, path or file, described in one line that names the fix.

    Entry points catch it, print the message without a traceback, and exit non-zero,
    so nothing half-written is left behind and nothing is deleted.
    """


def first_line(err: BaseException) -> str:
    """The first line of an exception's message, or its type name when the message is empty.

    Error messages quote a library's reason this way, so a multi-line torch or PIL message
    never breaks the one-line format.
    """
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def closest(name: str, choices, n: int = 5) -> list[str]:
    """Return up to ``n`` entries of ``choices`` that look most like ``name``.

    Used in error messages ("did you mean ...") for unknown backbones and layer names.
    """
    import difflib

    choices = list(choices)
    close = difflib.get_close_matches(name, choices, n=n, cutoff=0.5)
    if len(close) < n:
        close += [c for c in choices if name.lower() in c.lower() and c not in close][: n - len(close)]
    return close
