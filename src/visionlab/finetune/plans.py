"""Freeze plans: pure functions from the epoch to what trains and how fast.

Every plan unfreezes the backbone from the top (head side) down, so at each epoch it is
described by one number, how many of the last stages train (``trainable_count``), plus a
phase factor that scales every learning rate (``lr_factor``, 1 unless the plan has a
low-LR fine-tuning phase). Because both depend only on the epoch, a run resumed from a
checkpoint lands in exactly the state the uninterrupted run had at that epoch.

Common fields of every plan (the ``freeze/`` config group):

- ``granularity``: ``coarse`` (the model's blocks) or ``fine`` (layers / residual blocks);
  which of the backbone's stage lists the plan counts in.
- ``train_bn``: keep BatchNorm of frozen stages in train mode (default: eval mode, running
  statistics untouched).
- ``lr_mult``: backbone learning rate relative to the head's.
- ``layer_decay``: layer-wise decay from the head down: stage ``i`` of ``n`` (input side
  first) gets ``lr_mult * layer_decay ** (n - i)`` (ULMFiT uses 1/2.6).
- ``truncate_after``: keep only the backbone up to this stage (small data far from the
  pretraining domain); see :meth:`visionlab.nets.backbone.Backbone.truncate`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from visionlab.errors import UserError
from visionlab.finetune.layers import stages_from_layer
from visionlab.nets.backbone import Backbone

GRANULARITIES = ("coarse", "fine")
DEFAULT_MILESTONES = {0: "head", 3: 2, 6: "all"}


def whole_number(key: str, value: object, minimum: int = 1) -> int:
    """``value`` if it is an integer >= ``minimum``, else a UserError naming ``freeze.<key>``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"freeze.{key}={value} must be a whole number >= {minimum}")
    return value


def positive(key: str, value: object) -> float:
    """``value`` as a float if it is a number > 0, else a UserError naming ``freeze.<key>``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise UserError(f"freeze.{key}={value} must be a positive number")
    return float(value)


class FreezePlan:
    """Full fine-tuning (``freeze=none``): every backbone stage trains at every epoch.

    The base of all plans; subclasses override :meth:`trainable_count` (and
    :meth:`lr_factor` for phase changes).
    """

    def __init__(self, granularity: str = "coarse", train_bn: bool = False, lr_mult: float = 1.0,
                 layer_decay: float = 1.0, truncate_after: str | None = None) -> None:
        if granularity not in GRANULARITIES:
            raise UserError(f"freeze.granularity='{granularity}' is not one of: {', '.join(GRANULARITIES)}")
        self.granularity = granularity
        self.train_bn = train_bn
        self.lr_mult = positive("lr_mult", lr_mult)
        self.layer_decay = positive("layer_decay", layer_decay)
        self.truncate_after = truncate_after

    def prepare(self, backbone: Backbone) -> None:
        """Truncate ``backbone`` if asked, then check the plan against its stages.

        Called once, before the head is built (truncation changes the feature width).
        Raises a UserError for settings the backbone cannot satisfy.
        """
        if self.truncate_after is not None:
            backbone.truncate(self.truncate_after)
        self._check(backbone, [s.name for s in backbone.stages(self.granularity)])

    def _check(self, backbone: Backbone, stages: list[str]) -> None:
        """Plan-specific checks against the backbone's stage list (none here)."""

    def trainable_count(self, epoch: int, num_stages: int) -> int:
        """How many of the last ``num_stages`` backbone stages train during ``epoch``."""
        return num_stages

    def trainable_stages(self, epoch: int, stages: Sequence[str]) -> set[str]:
        """Names of the backbone stages that train during ``epoch`` (the top ones)."""
        count = min(self.trainable_count(epoch, len(stages)), len(stages))
        return set(stages[len(stages) - count:])

    def lr_factor(self, epoch: int) -> float:
        """Factor on every group's scheduled learning rate during ``epoch`` (phase changes)."""
        return 1.0

    def lr_multipliers(self, stages: Sequence[str]) -> dict[str, float]:
        """Static LR multiplier of each backbone stage relative to the head's (which is 1)."""
        n = len(stages)
        return {name: self.lr_mult * self.layer_decay ** (n - i) for i, name in enumerate(stages)}

    def backbone_frozen_throughout(self, num_stages: int, max_epochs: int) -> bool:
        """True if no backbone stage trains (nor BatchNorm statistic changes) in any epoch."""
        return not self.train_bn and all(
            self.trainable_count(e, num_stages) == 0 for e in range(max(max_epochs, 1))
        )

    def first_change_after(self, num_stages: int, max_epochs: int, horizon: int = 1000) -> int | None:
        """The first epoch from ``max_epochs`` on whose trainable stages or LR factor differ from the
        run's last epoch: a milestone the run never reaches (None if there is none)."""
        last = max(max_epochs, 1) - 1
        state = (self.trainable_count(last, num_stages), self.lr_factor(last))
        for epoch in range(last + 1, horizon):
            if (self.trainable_count(epoch, num_stages), self.lr_factor(epoch)) != state:
                return epoch
        return None

    def observe(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Hook for plans that react to validation metrics (``lp_ft``); a no-op here."""

    def state_dict(self) -> dict:
        """State that is not a function of the epoch (none here), saved in checkpoints."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""

    def describe(self) -> str:
        """One line for the log saying what this plan does."""
        return "full fine-tuning: every backbone stage trains"


class FeatureExtraction(FreezePlan):
    """The whole backbone is frozen at every epoch; only the new head trains."""

    def trainable_count(self, epoch: int, num_stages: int) -> int:
        """No backbone stage ever trains."""
        return 0

    def describe(self) -> str:
        """One line for the log saying what this plan does."""
        return "feature extraction: the backbone is frozen, only the head trains"


class LastN(FreezePlan):
    """The last ``n`` stages (and the head) train; or every stage from layer ``from_layer`` on.

    Course recipes, exactly:

    - VGG16, "unfreeze block5_conv1, block5_conv2, block5_conv3":
      ``backbone=vgg16 freeze=last_n freeze.from_layer=block5_conv1``
    - "unfreeze the last 4 conv layers":
      ``freeze=last_n freeze.n=4 freeze.granularity=fine``

    ``from_layer``, when set, takes precedence over ``n``; it accepts a Keras-style alias
    (``block5_conv1``), a stage name of either granularity, or a module of the backbone
    (``features.24``, ``layer4.1``).
    """

    def __init__(self, n: int | None = None, from_layer: str | None = None, **common) -> None:
        super().__init__(**common)
        if n is None and from_layer is None:
            raise UserError("freeze=last_n needs freeze.n=<number of stages> or freeze.from_layer=<layer>")
        self.n = n if from_layer is not None else whole_number("n", n, minimum=0)
        self.from_layer = from_layer

    def _check(self, backbone: Backbone, stages: list[str]) -> None:
        """Resolve ``from_layer`` to a stage count; check ``n`` fits the backbone."""
        if self.from_layer is not None:
            self.n = len(stages_from_layer(backbone, self.from_layer, self.granularity))
        elif self.n > len(stages):
            raise UserError(
                f"freeze.n={self.n} but {backbone.name} has only {len(stages)} {self.granularity} "
                f"stages ({', '.join(stages)}): use n <= {len(stages)}"
                + (" or freeze.granularity=fine" if self.granularity == "coarse" else "")
            )

    def trainable_count(self, epoch: int, num_stages: int) -> int:
        """Always the last ``n`` stages."""
        return self.n

    def describe(self) -> str:
        """One line for the log saying what this plan does."""
        where = f" (from layer {self.from_layer} on)" if self.from_layer else ""
        return f"last_n: the last {self.n} {self.granularity} stages{where} train, the rest is frozen"


class Staged(FreezePlan):
    """A milestone schedule ``{epoch: head | <number of top stages> | all}``.

    ``{0: head, 3: 2, 6: all}`` trains the head alone, from epoch 3 also the last two
    stages, from epoch 6 everything. Before the first milestone only the head trains.
    ``lr_factors`` (``{epoch: factor}``, piecewise constant, 1 before its first key)
    scales every learning rate from that epoch on, e.g. ``{6: 0.1}``. ``milestones=None``
    means :data:`DEFAULT_MILESTONES`. (The YAML default is null rather than the dict so that
    a command-line dict replaces it; Hydra would merge two dicts.)
    Command line: ``freeze=staged 'freeze.milestones={0:head,3:2,6:all}'``.
    """

    def __init__(self, milestones: Mapping | None = None, lr_factors: Mapping | None = None,
                 **common) -> None:
        super().__init__(**common)
        self.milestones = _epoch_dict(DEFAULT_MILESTONES if milestones is None else milestones, "milestones")
        self.lr_factors = _epoch_dict(lr_factors or {}, "lr_factors")
        if not self.milestones:
            raise UserError("freeze.milestones is empty: give e.g. {0: head, 3: 2, 6: all}")
        levels = [_level(spec) for spec in self.milestones.values()]
        epochs = list(self.milestones)
        if epochs != sorted(set(epochs)) or levels != sorted(levels):
            raise UserError(
                f"freeze.milestones={dict(self.milestones)} must be increasing: epochs ascending, "
                "each unfreezing at least as much as the one before (e.g. {0: head, 3: 2, 6: all})"
            )
        for epoch, factor in self.lr_factors.items():
            positive(f"lr_factors[{epoch}]", factor)

    def _check(self, backbone: Backbone, stages: list[str]) -> None:
        """Numeric milestones must not exceed the number of stages."""
        for epoch, spec in self.milestones.items():
            if isinstance(spec, int) and spec > len(stages):
                raise UserError(
                    f"freeze.milestones[{epoch}]={spec} but {backbone.name} has only {len(stages)} "
                    f"{self.granularity} stages ({', '.join(stages)}): use a number <= {len(stages)} or 'all'"
                )

    def trainable_count(self, epoch: int, num_stages: int) -> int:
        """The count of the last milestone at or before ``epoch`` (0 before the first)."""
        spec = _last_at_or_before(self.milestones, epoch, "head")
        return {"head": 0, "all": num_stages}.get(spec, spec)

    def lr_factor(self, epoch: int) -> float:
        """The factor of the last ``lr_factors`` key at or before ``epoch`` (1 before)."""
        return float(_last_at_or_before(self.lr_factors, epoch, 1.0))

    def describe(self) -> str:
        """One line for the log saying what this plan does."""
        text = f"staged unfreezing: {dict(self.milestones)} ({self.granularity} stages)"
        return text + (f", LR factors {dict(self.lr_factors)}" if self.lr_factors else "")


class TwoPhase(Staged):
    """The course's two-phase recipe: feature extraction for ``epochs`` epochs, then every
    stage trains at ``ft_lr_mult`` x the learning rate (10x lower by default).

    ``freeze=two_phase freeze.epochs=5``
    """

    def __init__(self, epochs: int = 5, ft_lr_mult: float = 0.1, **common) -> None:
        whole_number("epochs", epochs)
        super().__init__(milestones={0: "head", epochs: "all"}, lr_factors={epochs: ft_lr_mult}, **common)
        self.epochs = epochs
        self.ft_lr_mult = ft_lr_mult

    def describe(self) -> str:
        """One line for the log saying what this plan does."""
        return (f"two-phase: feature extraction for {self.epochs} epochs, then every stage "
                f"trains at {self.ft_lr_mult}x the learning rate")


class Gradual(FreezePlan):
    """ULMFiT-style gradual unfreezing: the head alone first, then one more stage from the
    top every ``every`` epochs. Pair it with ``layer_decay`` (ULMFiT: 1/2.6).

    ``freeze=gradual freeze.every=2``
    """

    def __init__(self, every: int = 1, **common) -> None:
        super().__init__(**common)
        self.every = whole_number("every", every)

    def trainable_count(self, epoch: int, num_stages: int) -> int:
        """``epoch // every`` stages, at most all of them."""
        return min(num_stages, epoch // self.every)

    def describe(self) -> str:
        """One line for the log saying what this plan does."""
        return (f"gradual unfreezing: one more {self.granularity} stage every {self.every} "
                f"epoch(s), layer decay {self.layer_decay}")


def _epoch_dict(mapping: Mapping, key: str) -> dict[int, object]:
    """``mapping`` with integer epoch keys (YAML or command-line keys may be strings)."""
    if not isinstance(mapping, Mapping):
        raise UserError(f"freeze.{key} must be a mapping {{epoch: value}}, got {mapping!r}")
    out: dict[int, object] = {}
    for epoch, value in mapping.items():
        try:
            epoch_int = int(epoch)
        except (TypeError, ValueError):
            raise UserError(f"freeze.{key} key '{epoch}' is not an epoch number") from None
        if epoch_int < 0:
            raise UserError(f"freeze.{key} key {epoch_int} must be an epoch >= 0")
        out[epoch_int] = value
    return out


def _level(spec: object) -> float:
    """Sort key of a milestone value: head=0 < n < all; anything else is a UserError."""
    if spec == "head":
        return 0
    if spec == "all":
        return float("inf")
    if isinstance(spec, int) and not isinstance(spec, bool) and spec >= 0:
        return spec
    raise UserError(f"freeze.milestones value {spec!r} is not 'head', 'all' or a number of stages >= 0")


def _last_at_or_before(schedule: dict[int, object], epoch: int, default: object) -> object:
    """The value of the largest key <= ``epoch``, or ``default`` if there is none."""
    keys = [k for k in schedule if k <= epoch]
    return schedule[max(keys)] if keys else default
