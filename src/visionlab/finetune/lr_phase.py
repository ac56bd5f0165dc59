"""A plan's phase factor on the learning rate, composed with whatever scheduler runs.

Schedulers own ``group["lr"]``: OneCycleLR recomputes it from its own state every step,
ReduceLROnPlateau and StepLR multiply the current value. So a phase change (two_phase,
lp_ft: "now train at 10x lower LR") cannot simply rescale ``group["lr"]``. Instead each
param group keeps the scheduler's own value in ``group["unscaled_lr"]`` and the factor in
``group["phase_factor"]``; outside a scheduler step ``group["lr"]`` is their product. The
scheduler is stepped on the unscaled values (:func:`scheduler_view`), and the factor is
re-applied after. Both keys live in the optimizer's state dict, so a resumed run continues
from exactly the same values.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def init_phase(optimizer: torch.optim.Optimizer) -> None:
    """Record the current (scheduler-initialised) LRs as unscaled, with factor 1."""
    for group in optimizer.param_groups:
        group["unscaled_lr"] = group["lr"]
        group["phase_factor"] = 1.0


def set_phase_factor(optimizer: torch.optim.Optimizer, factor: float) -> None:
    """Make every group's effective LR its scheduled LR times ``factor``."""
    for group in optimizer.param_groups:
        group.setdefault("unscaled_lr", group["lr"])
        group["phase_factor"] = factor
        group["lr"] = group["unscaled_lr"] * factor


@contextlib.contextmanager
def scheduler_view(optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """Show the scheduler its own (unscaled) LRs while it steps, then re-apply the factor."""
    for group in optimizer.param_groups:
        group.setdefault("unscaled_lr", group["lr"])
        group["lr"] = group["unscaled_lr"]
    try:
        yield
    finally:
        for group in optimizer.param_groups:
            group["unscaled_lr"] = group["lr"]
            group["lr"] = group["lr"] * group.get("phase_factor", 1.0)
