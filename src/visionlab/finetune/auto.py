"""``freeze=auto``: pick a strategy from the course's four transfer-learning cases.

=================  ==========================================================
small + similar    feature extraction: too little data to fine-tune without
                   overfitting, and the top features already fit the task
large + similar    fine-tune everything: enough data, the features are a good start
small + different  truncate to the early (generic) layers, freeze them and train
                   the new head on their features
large + different  train everything (or from scratch: ``backbone.pretrained=false``)
=================  ==========================================================
"""

from __future__ import annotations

import logging
from collections.abc import Sized

from visionlab.errors import UserError
from visionlab.finetune.plans import FreezePlan, whole_number
from visionlab.nets.backbone import Backbone

log = logging.getLogger(__name__)


class AutoPlan(FreezePlan):
    """Chooses one of the four cases when prepared, from the train-set size and ``similar``.

    ``similar`` says whether the data resemble the backbone's pretraining data; a train set
    with fewer than ``size_threshold`` images is small. The size is ``train_size`` if given,
    else what :meth:`count_train_set` found (needed for datasets without a length).
    ``truncate_after`` chooses where the small+different case cuts (default: the middle
    coarse stage). The choice and its reason are logged and shown by :meth:`describe`.

    ``freeze=auto freeze.similar=true`` (``freeze.size_threshold=5000``)
    """

    def __init__(self, similar: bool | None = None, size_threshold: int = 5000,
                 train_size: int | None = None, **common) -> None:
        super().__init__(**common)
        self.similar = similar
        self.size_threshold = whole_number("size_threshold", size_threshold)
        self.train_size = train_size
        self.counted_size: int | None = None
        self.frozen: bool | None = None  # the choice: backbone frozen (small) or trained (large)
        self.choice = "not chosen yet"

    def count_train_set(self, train_set: object) -> None:
        """Remember the train set's length (if it has one) for the size test."""
        self.counted_size = len(train_set) if isinstance(train_set, Sized) else None

    def prepare(self, backbone: Backbone) -> None:
        """Choose the case (truncating the backbone for small+different), then prepare."""
        if self.similar not in (True, False):
            raise UserError("freeze=auto needs freeze.similar=true|false: does your data look like "
                            "the backbone's pretraining data?")
        size = self.train_size if self.train_size is not None else self.counted_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise UserError(f"freeze=auto cannot tell the train-set size (got {size}): "
                            "set freeze.train_size=<number of training images>")
        small = size < self.size_threshold
        self.frozen = small
        if small and self.similar:
            what = "feature extraction"
        elif small:
            if self.truncate_after is None:
                coarse = [s.name for s in backbone.stages("coarse")]
                self.truncate_after = coarse[(len(coarse) - 1) // 2]
            what = (f"truncate after {self.truncate_after}, train the head on those early features "
                    "(add layers with model.head.hidden=[...])")
        else:
            what = "fine-tune every stage" if self.similar else (
                "train every stage (backbone.pretrained=false trains from scratch)")
        case = f"{'small' if small else 'large'}+{'similar' if self.similar else 'different'}"
        why = (f"{size} train images {'<' if small else '>='} freeze.size_threshold={self.size_threshold}, "
               f"freeze.similar={str(self.similar).lower()}")
        self.choice = f"{case}: {what} ({why})"
        log.info("freeze=auto chose %s", self.choice)
        super().prepare(backbone)

    def trainable_count(self, epoch: int, num_stages: int) -> int:
        """No stage in the small cases, every stage in the large ones."""
        if self.frozen is None:
            raise RuntimeError("AutoPlan.prepare(backbone) must run before the plan is used")
        return 0 if self.frozen else num_stages

    def describe(self) -> str:
        """One line for the log: the case chosen, what it does and why."""
        return f"auto: {self.choice}"
