"""Freeze plans: pure functions from the epoch to the set of trainable backbone stages.

Because a plan depends only on the epoch, a run resumed from a checkpoint lands in exactly
the state the uninterrupted run had at that epoch.
"""

from __future__ import annotations

from collections.abc import Sequence


class FreezePlan:
    """Base plan: every stage trains, every stage at the backbone's LR multiplier.

    ``granularity`` picks the backbone's ``coarse`` or ``fine`` stage list; ``train_bn``
    keeps BatchNorm of frozen stages in train mode (default: eval, stats untouched);
    ``lr_mult`` scales the learning rate of every backbone stage relative to the head.
    """

    def __init__(self, granularity: str = "coarse", train_bn: bool = False, lr_mult: float = 1.0) -> None:
        self.granularity = granularity
        self.train_bn = train_bn
        self.lr_mult = lr_mult

    def trainable_stages(self, epoch: int, stages: Sequence[str]) -> set[str]:
        """Names of the backbone stages that train during ``epoch``."""
        return set(stages)

    def lr_multipliers(self, stages: Sequence[str]) -> dict[str, float]:
        """LR multiplier of each backbone stage relative to the optimizer's base LR."""
        return {name: self.lr_mult for name in stages}

    def describe(self) -> str:
        """One line for the log saying what this plan does."""
        return "full fine-tuning: every backbone stage trains"


class FeatureExtraction(FreezePlan):
    """The whole backbone is frozen at every epoch; only the new head trains."""

    def trainable_stages(self, epoch: int, stages: Sequence[str]) -> set[str]:
        """No backbone stage ever trains."""
        return set()

    def describe(self) -> str:
        """One line for the log saying what this plan does."""
        return "feature extraction: the backbone is frozen, only the head trains"
