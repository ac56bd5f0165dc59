"""Where the project's ``conf/`` is: beside the current directory, else in the source checkout of
an editable install. Read without torch, by the command line and by the loading of checkpoints
written before they held their run's config."""

from __future__ import annotations

from pathlib import Path

from visionlab.errors import UserError

# conf/ of the source checkout (an editable install): src/visionlab/project.py -> repo root.
CHECKOUT_CONF = Path(__file__).resolve().parents[2] / "conf"


def conf_dir_if_any() -> Path | None:
    """The project's ``conf/`` (next to the current directory, else the source checkout's), or None:
    a trained model is used without it."""
    for candidate in (Path.cwd() / "conf", CHECKOUT_CONF):
        if (candidate / "train.yaml").is_file():
            return candidate
    return None


def find_conf_dir() -> Path:
    """The project's ``conf/`` (:func:`conf_dir_if_any`); a UserError when there is none."""
    found = conf_dir_if_any()
    if found is not None:
        return found
    raise UserError("no conf/train.yaml found: run visionlab from the project root "
                    "(the folder with train.py and conf/)")
