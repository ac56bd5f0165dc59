"""What a checkpoint file is, read in milliseconds without torch: the front ends check a path
before the imports that take seconds, so a wrong file is one fast line.

A ``.ckpt`` that ``torch.save`` wrote is a zip archive whose ``data.pkl`` holds the dictionary;
its tensors are stored beside it and only referenced from the pickle. Reading that pickle with an
unpickler that builds nothing but plain containers (every tensor and any other object becomes an
inert placeholder) gives the hyperparameters and the module kind without executing anything from
the file, and without the storages.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

from visionlab.errors import UserError

CLASSIFIER = "classifier"
# The `visionlab sample` options of the built-in kinds, for checkpoints written before modules
# recorded theirs (``visionlab_sample_options``, see visionlab.modules.base.RunModule).
RECORDED_BEFORE = {"gan": ("n", "label", "per_class"), "lapgan": ("n", "label", "per_class"),
                   "srgan": ("input",), "inpaint": ("input", "mask")}
PLAIN_TYPES = {("collections", "OrderedDict"), ("builtins", "set"), ("builtins", "frozenset"),
               ("builtins", "slice"), ("builtins", "complex")}


class Opaque:
    """Stands in for every object the header does not need (tensors, storages, dtypes...)."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __call__(self, *args, **kwargs) -> Opaque:
        return self

    def __setstate__(self, state) -> None:
        pass


class HeaderUnpickler(pickle.Unpickler):
    """Builds plain containers only; any other global resolves to :class:`Opaque`."""

    def find_class(self, module: str, name: str):
        """A plain container type, or the placeholder."""
        if (module, name) in PLAIN_TYPES:
            return super().find_class(module, name)
        return Opaque

    def persistent_load(self, pid) -> Opaque:
        """Tensor storages live outside the pickle: not read."""
        return Opaque()


@dataclass(frozen=True)
class CheckpointHeader:
    """The kind of module that wrote a checkpoint, its hyperparameters and the ``visionlab sample``
    options it takes (none: it is not sampled from)."""

    path: Path
    kind: str | None  # "classifier", "gan", ... or None: not a visionlab module
    hyper_parameters: dict
    sample_options: tuple[str, ...] = ()


def run_dir_of(checkpoint: Path) -> Path:
    """The run directory of a checkpoint train.py wrote (``<run>/checkpoints/<name>.ckpt``)."""
    return checkpoint.resolve().parent.parent


def module_kind(state: dict) -> str | None:
    """The kind a checkpoint records (``visionlab_module``), or the one its hyperparameters show
    for checkpoints written before the kind was recorded."""
    hparams = state.get("hyper_parameters") or {}
    if state.get("visionlab_module"):
        return state["visionlab_module"]
    if {"latent_dim", "generator"} <= set(hparams):
        return "gan"
    if {"class_names", "backbone"} <= set(hparams):
        return CLASSIFIER
    return None


def read_header(path: Path, wanted: str) -> CheckpointHeader:
    """The header of the checkpoint at ``path``, or a UserError saying what the file is not.

    ``wanted`` names what the command needs ("a classifier checkpoint", ...) for the messages.
    """
    example = "e.g. outputs/<date>/<time>/checkpoints/last.ckpt"
    if not path.exists():
        raise UserError(f"{path} does not exist: give {wanted} ({example})")
    if not path.is_file():
        raise UserError(f"{path} is a folder: give {wanted}, a .ckpt file ({example})")
    try:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            if name is None:
                raise zipfile.BadZipFile("no data.pkl")
            state = HeaderUnpickler(archive.open(name)).load()
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, OSError, ValueError, KeyError,
            IndexError, TypeError, AttributeError):
        raise UserError(f"{path} is not a visionlab checkpoint (not a file torch.save wrote, or a "
                        f"truncated one): give {wanted} ({example})") from None
    if not isinstance(state, dict) or "state_dict" not in state:
        raise UserError(f"{path} is not a Lightning checkpoint (no state_dict): give {wanted}")
    kind = module_kind(state)
    options = state.get("visionlab_sample_options", RECORDED_BEFORE.get(kind, ()))
    return CheckpointHeader(path, kind, dict(state.get("hyper_parameters") or {}), tuple(options))


def require_classifier(path: Path) -> CheckpointHeader:
    """The header of a classifier checkpoint, or a UserError that says what the file is."""
    header = read_header(path, "a classifier checkpoint")
    if header.kind != CLASSIFIER and header.sample_options:
        raise UserError(f"{path} is a {header.kind} checkpoint, not a classifier's: draw from it with "
                        f"`visionlab sample {path}`")
    if header.kind != CLASSIFIER:
        raise UserError(f"{path} is not a visionlab classifier checkpoint (no class names or backbone)")
    return header


def require_samplable(path: Path) -> CheckpointHeader:
    """The header of a checkpoint ``visionlab sample`` can use (a GAN's, an SRGAN's...), or a
    UserError that says what the file is."""
    header = read_header(path, "the checkpoint of a GAN-family run (model=gan|lapgan|srgan|inpaint)")
    if header.kind == CLASSIFIER:
        raise UserError(f"{path} is a classifier checkpoint, not a GAN's: use `visionlab eval`, `predict` "
                        "or `export` with it")
    if not header.sample_options:
        raise UserError(f"{path} is not a GAN checkpoint: sample needs one written by a model=gan, lapgan, "
                        "srgan or inpaint run")
    return header
