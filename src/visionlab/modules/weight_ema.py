"""An exponential moving average of a model's weights (timm's ``--model-ema``), kept beside the
trained weights and swapped in to validate, test and deploy."""

from __future__ import annotations

import copy
from itertools import chain

import torch
from torch import nn


class WeightEMA(nn.Module):
    """``average <- decay * average + (1 - decay) * weights`` after every optimizer step, of the
    modules named in ``live`` (a copy of each, without gradients, in the checkpoint's state).

    The decay warms up as ``min(decay, (1 + n) / (10 + n))`` after n steps (as the GAN's EMA
    generator), so the average does not drag the initial weights along for thousands of steps.
    A weight that never changes (a frozen stage) stays bit-identical: its average moves by
    ``(1 - decay) * (weight - average)``, exactly 0. Buffers (BatchNorm statistics) are copied.
    """

    def __init__(self, live: dict[str, nn.Module], decay: float) -> None:
        super().__init__()
        self.decay = decay
        self.average = nn.ModuleDict({name: copy.deepcopy(module) for name, module in live.items()})
        self.average.requires_grad_(False)

    @staticmethod
    def _pairs(first: nn.ModuleDict | dict, second: nn.ModuleDict | dict, what: str):
        ours = chain.from_iterable(getattr(m, what)() for m in first.values())
        theirs = chain.from_iterable(getattr(m, what)() for m in second.values())
        return zip(ours, theirs, strict=True)

    @torch.no_grad()
    def update(self, live: dict[str, nn.Module], step: int) -> None:
        """Move the average toward ``live``'s weights after optimizer step ``step``."""
        decay = min(self.decay, (1 + step) / (10 + step))
        for average, weight in self._pairs(self.average, live, "parameters"):
            average.lerp_(weight, 1.0 - decay)
        for average, buffer in self._pairs(self.average, live, "buffers"):
            average.copy_(buffer)

    @torch.no_grad()
    def swap(self, live: dict[str, nn.Module]) -> None:
        """Exchange the average and ``live``'s weights (twice: back where they were, bit for bit)."""
        for average, weight in self._pairs(self.average, live, "parameters"):
            kept = weight.detach().clone()
            weight.copy_(average)
            average.copy_(kept)

    @torch.no_grad()
    def copy_into(self, live: dict[str, nn.Module]) -> None:
        """Give ``live`` the averaged weights (a rebuilt model deployed with them)."""
        for average, weight in self._pairs(self.average, live, "parameters"):
            weight.copy_(average)
