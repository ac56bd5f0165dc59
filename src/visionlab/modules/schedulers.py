"""Learning-rate schedulers that respect per-group learning rates."""

from __future__ import annotations

import torch


def one_cycle(optimizer: torch.optim.Optimizer, total_steps: int, pct_start: float = 0.3,
              div_factor: float = 25.0, final_div_factor: float = 1e4) -> torch.optim.lr_scheduler.OneCycleLR:
    """OneCycleLR whose peak LR is each parameter group's own configured LR.

    Plain ``OneCycleLR(max_lr=x)`` would give every group the same peak and erase
    discriminative (per-stage) learning rates.
    """
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total_steps,
        pct_start=pct_start, div_factor=div_factor, final_div_factor=final_div_factor,
    )
