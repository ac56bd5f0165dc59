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


def load_failure(err: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` (or safetensors) could not read a file, in a few words.

    PyTorch's own message for a file that is no tensor file advises re-running with
    ``weights_only=False``, i.e. unpickling a file of unknown origin: it is never repeated.
    """
    if "weights_only" in str(err) or "Weights only" in str(err):
        return "not a file of tensors (a text file, or a pickle of other objects)"
    return first_line(err)[:200]


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
