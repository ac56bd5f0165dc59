"""How far a generator's 2-D points are from the true distribution: a grid estimate of the
Jensen-Shannon divergence, as the GAN Lab view reports it (``val/js``)."""

from __future__ import annotations

import math

import torch

EXTENT = 1.2  # the square [-EXTENT, EXTENT]² holds every toy distribution with room to spare


def histogram_2d(points: torch.Tensor, bins: int, extent: float = EXTENT) -> torch.Tensor:
    """Counts ``(bins, bins)`` of ``points`` ``(n, 2)`` on a regular grid over [-extent, extent]²;
    points outside fall into the border cells (a generator cannot hide mass off the grid)."""
    cells = ((points.float() + extent) / (2 * extent) * bins).floor().long().clamp(0, bins - 1)
    flat = cells[:, 1] * bins + cells[:, 0]
    return torch.bincount(flat, minlength=bins * bins).view(bins, bins).float()


def js_divergence(real: torch.Tensor, fake: torch.Tensor, bins: int = 24, extent: float = EXTENT) -> float:
    """JS(P‖Q) in nats, in [0, ln 2], of the histograms of two point sets on the same grid.

    ``0.5 KL(P‖M) + 0.5 KL(Q‖M)`` with ``M = (P + Q) / 2``: 0 for identical histograms,
    ln 2 for disjoint ones, the value an optimal discriminator's loss is built on.
    """
    p = histogram_2d(real, bins, extent)
    q = histogram_2d(fake, bins, extent)
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a: torch.Tensor) -> torch.Tensor:
        """KL(a || m) over the cells where ``a`` has mass (m > 0 there)."""
        mask = a > 0
        return (a[mask] * (a[mask] / m[mask]).log()).sum()

    return float(min(0.5 * kl(p) + 0.5 * kl(q), torch.tensor(math.log(2))))
