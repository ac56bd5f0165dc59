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
