"""Precision and recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020) of
generated samples against real ones, in a feature space, from k-nearest-neighbour balls.

FID mixes two questions into one number; these keep them apart. *Precision*: the share of
generated samples that fall inside the real data's manifold (the union of balls around each real
feature reaching its k-th nearest real neighbour): are the samples realistic? *Recall*: the share
of real samples inside the generated manifold: is all of the data covered (mode collapse shows
here)? *Density* counts how many real balls each sample falls in (1 on average for samples drawn
like the data), *coverage* the share of real balls that hold at least one sample; both are less
fooled by outliers than precision and recall.
"""

from __future__ import annotations

import torch

DEFAULT_K = 5  # the papers' choice


def kth_neighbour_distance(features: torch.Tensor, k: int) -> torch.Tensor:
    """``(N,)``: each row's distance to its ``k``-th nearest other row."""
    distances = torch.cdist(features, features)
    return distances.kthvalue(k + 1, dim=1).values  # the first is the row itself, at 0


def prdc(real: torch.Tensor, fake: torch.Tensor, k: int = DEFAULT_K) -> dict[str, float]:
    """``{"precision", "recall", "density", "coverage"}`` of ``fake`` (M, D) against ``real`` (N, D)
    features; ``k`` shrinks to what the smaller set allows (at least 1)."""
    real, fake = real.double(), fake.double()
    k = max(1, min(k, len(real) - 1, len(fake) - 1))
    real_radius, fake_radius = kth_neighbour_distance(real, k), kth_neighbour_distance(fake, k)
    distances = torch.cdist(real, fake)  # (N, M)
    inside_real = distances <= real_radius[:, None]  # [i, j]: sample j in real ball i
    return {
        "precision": float(inside_real.any(dim=0).double().mean()),
        "recall": float((distances <= fake_radius[None, :]).any(dim=1).double().mean()),
        "density": float(inside_real.sum(dim=0).double().mean() / k),
        "coverage": float((distances.min(dim=1).values <= real_radius).double().mean()),
    }
