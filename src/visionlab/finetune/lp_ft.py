"""LP-FT: linear probing, then full fine-tuning at a lower learning rate (Kumar et al. 2022).

Training the new head on a frozen backbone first means fine-tuning starts from a good head,
so the pretrained features are distorted less than when a random head back-propagates
into them from the first step.
"""

from __future__ import annotations

from collections.abc import Mapping

from visionlab.errors import UserError
from visionlab.finetune.plans import FreezePlan, positive, whole_number

MODES = ("min", "max")


class LinearProbeFineTune(FreezePlan):
    """Head only until the switch, then every stage at ``ft_lr_mult`` x the learning rate.

    The switch comes after ``epochs`` epochs of linear probing, or earlier when ``monitor``
    has not improved by more than ``min_delta`` for ``patience`` validation runs (either
    may be null, not both). The switch epoch found by the plateau rule is state: it is
    saved in checkpoints (through the freeze callback) so a resumed run switches where the
    original did.

    ``freeze=lp_ft freeze.epochs=5`` or ``freeze=lp_ft freeze.epochs=null freeze.patience=2``
    """

    def __init__(self, epochs: int | None = 5, ft_lr_mult: float = 0.1, monitor: str = "val/loss",
                 mode: str = "min", patience: int | None = None, min_delta: float = 0.0,
                 **common) -> None:
        super().__init__(**common)
        if epochs is None and patience is None:
            raise UserError("freeze=lp_ft needs freeze.epochs=<linear-probe epochs> and/or "
                            "freeze.patience=<validation runs without improvement>")
        for key, value in (("epochs", epochs), ("patience", patience)):
            if value is not None:
                whole_number(key, value)
        if mode not in MODES:
            raise UserError(f"freeze.mode='{mode}' is not one of: {', '.join(MODES)}")
        self.epochs = epochs
        self.ft_lr_mult = positive("ft_lr_mult", ft_lr_mult)
        self.monitor = monitor
        self.mode = mode
        self.patience = patience
        self.min_delta = min_delta
        self.plateau_epoch: int | None = None
        self._best: float | None = None
        self._bad_runs = 0

    @property
    def switch_epoch(self) -> int | None:
        """The first fine-tuning epoch, if known (fixed by ``epochs`` or found by the plateau)."""
        candidates = [e for e in (self.epochs, self.plateau_epoch) if e is not None]
        return min(candidates) if candidates else None

    def trainable_count(self, epoch: int, num_stages: int) -> int:
        """0 while probing, every stage from the switch on."""
        switch = self.switch_epoch
        return num_stages if switch is not None and epoch >= switch else 0

    def lr_factor(self, epoch: int) -> float:
        """1 while probing, ``ft_lr_mult`` from the switch on."""
        switch = self.switch_epoch
        return self.ft_lr_mult if switch is not None and epoch >= switch else 1.0

    def backbone_frozen_throughout(self, num_stages: int, max_epochs: int) -> bool:
        """Only if neither a plateau nor ``epochs`` can switch within the run."""
        return self.patience is None and super().backbone_frozen_throughout(num_stages, max_epochs)

    def observe(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Update the plateau rule with the end-of-epoch ``metrics`` of ``epoch``."""
        switch = self.switch_epoch
        if self.patience is None or (switch is not None and switch <= epoch + 1):
            return
        if self.monitor not in metrics:
            raise UserError(f"freeze.monitor='{self.monitor}' was not logged; "
                            f"available: {', '.join(sorted(metrics))}")
        value = float(metrics[self.monitor])
        sign = 1.0 if self.mode == "min" else -1.0
        if self._best is None or sign * (self._best - value) > self.min_delta:
            self._best, self._bad_runs = value, 0
        else:
            self._bad_runs += 1
        if self._bad_runs >= self.patience:
            self.plateau_epoch = epoch + 1

    def state_dict(self) -> dict:
        """The plateau rule's memory: best value, runs without improvement, switch epoch."""
        return {"plateau_epoch": self.plateau_epoch, "best": self._best, "bad_runs": self._bad_runs}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.plateau_epoch = state.get("plateau_epoch")
        self._best = state.get("best")
        self._bad_runs = int(state.get("bad_runs", 0))

    def describe(self) -> str:
        """One line for the log saying what this plan does."""
        rules = []
        if self.epochs is not None:
            rules.append(f"after {self.epochs} epochs")
        if self.patience is not None:
            rules.append(f"when {self.monitor} plateaus for {self.patience} validations")
        return (f"LP-FT: linear probe, then every stage trains at {self.ft_lr_mult}x the "
                f"learning rate, switching {' or '.join(rules)}")
