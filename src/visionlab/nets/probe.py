"""Running a network once on a dummy input: eval mode restored, failures as one line.

Builders probe a network at construction so that an input size it cannot take fails there,
in one line, rather than as a shape error in the middle of training; heads and truncation
probe to measure a feature width.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn

from visionlab.errors import UserError, first_line

PROBE_ERRORS = (RuntimeError, ValueError, AssertionError)


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put ``module`` in eval mode for the block, then restore its train/eval mode."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def probe_features(
    name: str,
    body: nn.Module,
    features_fn: Callable[[nn.Module, torch.Tensor], torch.Tensor],
    example: torch.Tensor,
) -> torch.Tensor:
    """Run ``features_fn(body, example)`` once in eval mode and return the features.

    Gradients follow the caller's grad mode (the timm builder traces which parameters the
    output uses). A failure is a UserError naming the backbone and the input size.
    """
    with eval_mode(body):
        try:
            return features_fn(body, example)
        except PROBE_ERRORS as err:
            raise UserError(
                f"backbone '{name}' cannot take {example.shape[-1]}px input "
                f"(backbone.input_size): {first_line(err)}"
            ) from None
