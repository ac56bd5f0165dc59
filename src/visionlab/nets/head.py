"""The new classification head put on top of a backbone."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from visionlab.errors import UserError
from visionlab.nets.backbone import pool_features

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}
POOLS = ("avg", "max", "flatten")


class ClassifierHead(nn.Module):
    """Pool -> [Dense -> activation -> Dropout]* -> Dense(num_classes).

    ``hidden=[1024, 512], dropout=0.5`` with ``pool=avg`` is the course's
    GAP -> Dense 1024 -> Dropout -> Dense 512 -> out head; ``pool=flatten, hidden=[256]``
    is its Flatten -> Dense 256 -> Dropout -> out head. As in both, dropout follows the
    first hidden layer; with no hidden layers it comes right before the output layer.
    ``pool_fn(features, pool)`` pools; a classifier passes its backbone's ``pool``, so that
    ``avg`` is the source model's own global pooling (a ViT's class token).
    """

    def __init__(self, in_features: int, num_classes: int, pool: str = "avg",
                 hidden: Sequence[int] = (), dropout: float = 0.0, activation: str = "relu",
                 pool_fn: Callable[[torch.Tensor, str], torch.Tensor] = pool_features) -> None:
        super().__init__()
        if pool not in POOLS:
            raise UserError(f"model.head.pool='{pool}' is not one of: {', '.join(POOLS)}")
        if activation not in ACTIVATIONS:
            raise UserError(f"model.head.activation='{activation}' is not one of: {', '.join(ACTIVATIONS)}")
        if not 0.0 <= dropout < 1.0:
            raise UserError(f"model.head.dropout={dropout} must be in [0, 1)")
        self.pool = pool
        self.pool_fn = pool_fn
        self.in_features = in_features
        layers: list[nn.Module] = []
        width = in_features
        for i, h in enumerate(hidden):
            layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
            if dropout > 0 and i == 0:
                layers.append(nn.Dropout(dropout))
            width = h
        if dropout > 0 and not hidden:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(width, num_classes))
        self.mlp = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` from backbone features ``(N, C, H, W)`` / ``(N, L, C)``."""
        return self.mlp(self.pool_fn(features, self.pool))
