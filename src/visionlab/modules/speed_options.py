"""What the modules' GPU speed options share: ``model.compile``'s choice of a ``torch.compile`` backend."""

from __future__ import annotations

from collections.abc import Callable

import torch

from visionlab.errors import UserError


def compile_backend(compile: bool | str | None) -> str | None:
    """The ``torch.compile`` backend ``model.compile`` names (``true``: inductor), or None when off; a
    UserError for a name torch does not know, listing those it does."""
    if compile is False or compile is None:
        return None
    backend = "inductor" if compile is True else str(compile)
    if backend not in torch._dynamo.list_backends(exclude_tags=()):
        raise UserError(f"model.compile={compile!r} is not a torch.compile backend: use true (inductor) or "
                        f"one of: {', '.join(torch._dynamo.list_backends(exclude_tags=()))}")
    return backend


def compiled(function: Callable, compile: bool | str | None) -> Callable:
    """``function`` compiled with ``torch.compile`` (``true``: inductor, or the named backend), or as is.

    Dynamo guards on whether parameters require gradients and on train/eval mode, so each
    freeze-plan phase compiles once more (a staged plan with one unfreeze: 3-4 graphs in
    all), never once per step.
    """
    backend = compile_backend(compile)
    return function if backend is None else torch.compile(function, backend=backend)
