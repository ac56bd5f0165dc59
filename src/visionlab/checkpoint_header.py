"""What a checkpoint file is and what it can do, read in milliseconds without torch: the front ends
check a path before the imports that take seconds, so a wrong file is one fast line.

A ``.ckpt`` that ``torch.save`` wrote is a zip archive whose ``data.pkl`` holds the dictionary;
its tensors are stored beside it and only referenced from the pickle. Reading that pickle with an
unpickler that builds nothing but plain containers (every tensor and any other object becomes an
inert placeholder) gives the hyperparameters, the module kind and its capabilities without
executing anything from the file, and without the storages.

A module declares what it serves (:data:`CAPABILITIES`); its checkpoint records the declaration,
so the front ends ask for a capability and never compare a kind's name.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

from visionlab.errors import UserError

# The checkpoint format this visionlab writes, and the newest it reads. Format 1 (not recorded)
# held the kind, its class path and its sample options; a classifier needed its run folder and
# conf/ to be rebuilt. Format 2 holds the run's config and the capabilities: every kind rebuilds
# from the file alone.
FORMAT = 2
# What a module can serve, and the command that serves it.
CAPABILITIES = {"classify": "visionlab eval / predict", "export": "visionlab export",
                "draw": "visionlab sample --n", "restore": "visionlab sample --input"}
PLAIN_TYPES = {("collections", "OrderedDict"), ("builtins", "set"), ("builtins", "frozenset"),
               ("builtins", "slice"), ("builtins", "complex")}
EXAMPLE = "e.g. outputs/<date>/<time>/checkpoints/last.ckpt"


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
    """The kind of module that wrote a checkpoint (None: a file from before kinds were recorded, or
    not a visionlab module), the import path of its class, its hyperparameters, what it can serve,
    the ``visionlab sample`` options it takes and the checkpoint format."""

    path: Path
    kind: str | None
    hyper_parameters: dict
    capabilities: frozenset[str] = frozenset()
    sample_options: tuple[str, ...] = ()
    target: str | None = None
    format: int = 1

    def describe(self) -> str:
        """``a gan checkpoint: it can draw (visionlab sample --n)``: what the file is and serves."""
        what = f"a {self.kind} checkpoint" if self.kind else "a visionlab checkpoint"
        if not self.capabilities:
            return f"{what}, which serves no command (it can only be resumed)"
        serves = ", ".join(f"{name} ({CAPABILITIES.get(name, 'Python')})"
                           for name in sorted(self.capabilities))
        return f"{what}: it can {serves}"


def run_dir_of(checkpoint: Path) -> Path:
    """The run directory of a checkpoint train.py wrote (``<run>/checkpoints/<name>.ckpt``)."""
    return checkpoint.resolve().parent.parent


def output_root(checkpoint: Path) -> Path:
    """Where the front ends write what they make of ``checkpoint`` by default: its run folder when it
    sits in one (``<run>/checkpoints/``), else the folder the file was copied to."""
    run_dir = run_dir_of(checkpoint)
    if checkpoint.resolve().parent.name == "checkpoints" and (run_dir / ".hydra").is_dir():
        return run_dir
    return checkpoint.resolve().parent


def run_checkpoint(path: Path) -> Path:
    """``path`` itself, or for a run folder the checkpoint it is used through: ``best.ckpt`` (a GAN's
    lowest ``val/fid``), else its one ``epoch_*.ckpt`` (the best by the run's ``monitor``), else
    ``last.ckpt``."""
    if not path.is_dir():
        return path
    folder = path / "checkpoints"
    best = sorted(folder.glob("epoch_*.ckpt"))
    for candidate in (folder / "best.ckpt", best[0] if len(best) == 1 else None, folder / "last.ckpt"):
        if candidate is not None and candidate.is_file():
            return candidate
    raise UserError(f"{path} holds no checkpoints/best.ckpt, epoch_*.ckpt or last.ckpt: give a run folder "
                    "or a .ckpt file")


def legacy_capabilities(options: tuple[str, ...], hparams: dict) -> frozenset[str]:
    """What a format-1 checkpoint can serve, from what it recorded: sample options (``n``: it draws,
    ``input``: it restores), else its hyperparameters (a latent size: it draws; class names and a
    backbone: it classifies and exports)."""
    if "n" in options or (not options and "latent_dim" in hparams):
        return frozenset({"draw"})
    if "input" in options:
        return frozenset({"restore"})
    if not options and {"class_names", "backbone"} <= set(hparams):
        return frozenset({"classify", "export"})
    return frozenset()


def legacy_sample_options(capabilities: frozenset[str], hparams: dict) -> tuple[str, ...]:
    """The ``visionlab sample`` options of a checkpoint written before they were recorded."""
    if "draw" in capabilities:
        return ("n", "label", "per_class")
    if "restore" in capabilities:
        return ("input", "mask") if "mask" in hparams else ("input",)
    return ()


def module_found(dotted: str) -> bool:
    """Whether the module ``dotted`` (``package.module``) exists on the import path, found without
    importing it or its packages (so without torch): the top-level name through every finder
    (editable installs add their own), the rest through the package folders."""
    top, *rest = dotted.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    for part in rest:
        if spec is None or spec.submodule_search_locations is None:
            return False
        spec = importlib.machinery.PathFinder.find_spec(part, list(spec.submodule_search_locations))
    return spec is not None


def read_header(path: Path, wanted: str) -> CheckpointHeader:
    """The header of the checkpoint at ``path``, or a UserError saying what the file is not.

    ``wanted`` names what the command needs ("a classifier checkpoint", ...) for the messages.
    A checkpoint of a newer format, or one whose kind's class is nowhere on the import path, is
    refused here, before anything is loaded.
    """
    if not path.exists():
        raise UserError(f"{path} does not exist: give {wanted} ({EXAMPLE})")
    if not path.is_file():
        raise UserError(f"{path} is a folder: give {wanted}, a .ckpt file ({EXAMPLE})")
    try:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            if name is None:
                raise zipfile.BadZipFile("no data.pkl")
            state = HeaderUnpickler(archive.open(name)).load()
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, OSError, ValueError, KeyError,
            IndexError, TypeError, AttributeError):
        raise UserError(f"{path} is not a visionlab checkpoint (not a file torch.save wrote, or a "
                        f"truncated one): give {wanted} ({EXAMPLE})") from None
    if not isinstance(state, dict) or "state_dict" not in state:
        raise UserError(f"{path} is not a Lightning checkpoint (no state_dict): give {wanted}")
    version = state.get("visionlab_format", 1)
    if not isinstance(version, int) or not 1 <= version <= FORMAT:
        raise UserError(f"{path} has checkpoint format {version!r}, and this visionlab reads formats 1 to "
                        f"{FORMAT}: load it with the visionlab that wrote it, or upgrade (pip install -U "
                        "visionlab)")
    hparams = dict(state.get("hyper_parameters") or {})
    target = state.get("visionlab_target")
    if target and not module_found(target.rsplit(".", 1)[0]):
        raise UserError(f"{path} was written by the model kind {state.get('visionlab_module')!r} of "
                        f"{target}, whose module is not on the import path: install its package or add "
                        "its folder to PYTHONPATH")
    options = tuple(state.get("visionlab_sample_options") or ())
    if "visionlab_capabilities" in state:
        capabilities = frozenset(state["visionlab_capabilities"])
    else:
        capabilities = legacy_capabilities(options, hparams)
        options = options or legacy_sample_options(capabilities, hparams)
    return CheckpointHeader(path, state.get("visionlab_module"), hparams, capabilities, options, target,
                            version)


def require(path: Path, capabilities: tuple[str, ...], command: str) -> CheckpointHeader:
    """The header of a checkpoint that can serve one of ``capabilities`` (what ``command`` needs), or
    a UserError naming what the file can do instead."""
    needs = " or ".join(capabilities)
    header = read_header(path, f"a checkpoint that can {needs}")
    if not header.capabilities & set(capabilities):
        raise UserError(f"{path} is {header.describe()}; `visionlab {command}` needs one that can {needs}")
    return header
