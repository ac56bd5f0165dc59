"""Backbone weights from and to local files.

Accepted inputs, told apart by content rather than extension:

- a raw model state dict (timm or torchvision style, ``conv1.weight``, ``fc.weight``) in a
  ``.pth``/``.pt``/``.bin`` pickle or a ``.safetensors`` file; also when wrapped in a
  training checkpoint under ``state_dict`` or ``model``;
- a state dict of a :class:`~visionlab.nets.backbone.Backbone` (``body.``-prefixed keys,
  what :func:`save_backbone_weights` writes, e.g. the shipped ``shapes_net`` weights);
- a visionlab Lightning checkpoint (``.ckpt``): ``state_dict`` with ``backbone.body.*``
  and ``head.*`` keys.

Keys of the source model's head (``Backbone.head_prefixes``, or ``head.*`` in a visionlab
checkpoint) are never loaded: a backbone gets a new head, trained from scratch, whatever the
class counts; the dropped keys are named in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch

from visionlab.errors import UserError, load_failure
from visionlab.nets.backbone import Backbone

log = logging.getLogger(__name__)

ACCEPTED_FORMATS = (
    "a model state dict (.pth/.pt/.bin), a .safetensors file, or a visionlab checkpoint (.ckpt)"
)
SHOWN_KEYS = 5


def load_backbone_weights(backbone: Backbone, path: str | Path) -> None:
    """Load the weights file at ``path`` into ``backbone.body``, dropping the source's head.

    Nothing is loaded unless every backbone key is present with the
    right shape and no unknown key is left: a missing file, an unreadable or
    non-state-dict file, and missing, unexpected or mis-shaped keys are UserErrors.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"backbone.weights: no such file: {path}")
    body_state, head_state = _split(backbone, _read_state_dict(path))
    _check_fit(backbone, body_state, path)
    backbone.body.load_state_dict(body_state, strict=False)  # only num_batches_tracked may lack
    if head_state:
        log.info("dropping the old head: %s", _shorten(list(head_state)))
    log.info("loaded %d backbone tensors from %s", len(body_state), path)


def save_backbone_weights(backbone: Backbone, path: str | Path) -> Path:
    """Write ``backbone``'s state dict as safetensors with ``body.``-prefixed keys.

    That is the format :func:`load_backbone_weights` reads back and the one visionlab ships
    (``assets/shapes_net.safetensors``). Returns the path written.
    """
    from safetensors.torch import save_file

    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    # clone: safetensors refuses tensors sharing storage (tied weights, views)
    state = {
        f"body.{k}": v.detach().cpu().clone().contiguous()
        for k, v in backbone.body.state_dict().items()
    }
    save_file(state, str(path), metadata={"name": backbone.name, "source": backbone.source})
    return path


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors in ``path``, unwrapped from a ``state_dict``/``model`` entry if needed."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and safetensors errors share no base class
        raise UserError(f"cannot read weights file {path} ({load_failure(err)}); expected {ACCEPTED_FORMATS}"
                        ) from None
    if isinstance(obj, Mapping):
        for wrapper in ("state_dict", "model"):
            if isinstance(obj.get(wrapper), Mapping):
                obj = obj[wrapper]
                break
    if (
        not isinstance(obj, Mapping)
        or not obj
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    ):
        raise UserError(f"weights file {path} holds no state dict; expected {ACCEPTED_FORMATS}")
    return dict(obj)


def _split(backbone: Backbone, state: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """Split ``state`` into body keys (relative to ``backbone.body``) and old-head tensors."""
    if any(k.startswith("backbone.body.") for k in state):  # visionlab checkpoint
        prefix = "backbone.body."
        body = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith("backbone.")}
        head = {k: v for k, v in state.items() if k.startswith("head.")}
        return body, head
    if all(k.startswith("body.") for k in state):  # a Backbone's own state dict
        state = {k.removeprefix("body."): v for k, v in state.items()}
    head = {k: v for k, v in state.items() if _under(k, backbone.head_prefixes)}
    body = {k: v for k, v in state.items() if k not in head}
    return body, head


def _under(key: str, prefixes: tuple[str, ...]) -> bool:
    """Whether ``key`` belongs to one of the modules named in ``prefixes``."""
    return any(key == p or key.startswith(f"{p}.") for p in prefixes)


def _check_fit(backbone: Backbone, state: dict[str, torch.Tensor], path: Path) -> None:
    """UserError listing missing, unexpected and mis-shaped keys, if there are any."""
    expected = backbone.body.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} (file {tuple(v.shape)}, model {tuple(expected[k].shape)})"
        for k, v in state.items()
        if k in expected and v.shape != expected[k].shape
    ]
    problems = [
        f"{what}: {_shorten(keys)}"
        for what, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                           ("shape mismatches", mismatched))
        if keys
    ]
    if problems:
        raise UserError(
            f"weights file {path} does not fit backbone '{backbone.name}': {'; '.join(problems)}"
        )


def _shorten(keys: list[str]) -> str:
    """The first few keys, and how many more there are."""
    more = f" (+{len(keys) - SHOWN_KEYS} more)" if len(keys) > SHOWN_KEYS else ""
    return ", ".join(keys[:SHOWN_KEYS]) + more
