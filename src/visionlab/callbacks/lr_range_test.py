"""The learning-rate range test (Smith 2017; fastai's ``lr_find``): train a few steps with the
learning rate rising exponentially, record the loss, suggest where it falls fastest.

:class:`LRRangeTest` is the ``tune=lr_find`` option (``visionlab lr-find <overrides>``): the run is
composed and built as for training (data, backbone, freeze plan, MixUp, precision), then trains
``num_steps`` optimizer steps with every parameter group's learning rate scaled together, from
``min_lr`` to ``max_lr`` for ``optimizer.lr``: a group the plan gives 0.1x (``freeze.lr_mult``,
``freeze.layer_decay``) stays at 0.1x, and the plan is held at one epoch (``plan_epoch``, 0 by
default: its stages frozen then stay frozen, however many passes the steps take). The run's scheduler is
paused (the test sets every LR itself) and nothing is validated or checkpointed. The test stops
early when the loss diverges (its recent mean exceeds ``divergence`` times the lowest one, or is
not finite).

The suggestion (:func:`suggest_lr`) is the learning rate where the loss, smoothed by a centred
moving average over ``window`` steps (a trailing average would lag behind the rising LR), falls
fastest per decade of learning rate, looking only before the smoothed minimum and past the
first tenth of the steps. Steepest descent is the rule of Lightning's ``Tuner.lr_find`` and
fastai's original suggestion: a learning rate still on the way down, typically several times
below where the loss bottoms out.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightning as L
import numpy as np

from visionlab.errors import UserError
from visionlab.finetune.callback import FreezeScheduleCallback

log = logging.getLogger(__name__)


# Below this relative fall of the smoothed loss the curve is flat: no learning rate is suggested.
MIN_FALL = 0.05


def smoothed(losses: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average of ``losses`` over ``window`` points (fewer at the ends), the window
    kept to a sixth of the curve (3 at least), so a short test is not averaged flat."""
    half = min(window, max(3, len(losses) // 6)) // 2
    return np.array([losses[max(0, i - half):i + half + 1].mean() for i in range(len(losses))])


def suggest_lr(lrs: np.ndarray, losses: np.ndarray, window: int) -> float | None:
    """The learning rate where the smoothed loss falls fastest per decade before its minimum, or
    None when the loss never fell: fewer than three points between the first tenth and the
    minimum, or a minimum less than :data:`MIN_FALL` below where the curve starts (noise on a flat
    curve has a steepest point too)."""
    curve = smoothed(np.asarray(losses, dtype=float), window)
    lowest = int(np.argmin(curve))
    start = len(curve) // 10
    if lowest - start < 2 or curve[lowest] > (1 - MIN_FALL) * curve[start]:
        return None
    segment = slice(start, lowest + 1)
    slopes = np.gradient(curve[segment], np.log10(np.asarray(lrs)[segment]))
    return float(np.asarray(lrs)[segment][int(np.argmin(slopes))])


@dataclass
class RangeTestResult:
    """The recorded curve (learning rate of ``optimizer.lr`` and raw loss per step), the smoothed
    curve, the suggestion (None: the loss never fell) and why the test ended."""

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    suggestion: float | None = None
    stopped: str = "completed"


class LRRangeTest(L.Callback):
    """The ``tune=lr_find`` callback and report (module docstring).

    ``min_lr``/``max_lr``: the range of ``optimizer.lr`` swept (other groups keep their ratio to it);
    ``num_steps``: optimizer steps, spaced evenly in log LR; ``window``: the smoothing of the
    suggestion; ``divergence``: the stop ratio; ``plan_epoch``: the freeze plan's epoch whose
    trainable stages and LR factor hold for every step (0: what the run trains first; e.g.
    ``freeze=two_phase``'s ``freeze.epochs`` for its fine-tuning phase), however many passes over
    the data the steps take. ``reference_lr`` is the run's ``optimizer.lr``: the groups'
    configured LRs divided by it give their ratios.
    """

    def __init__(self, min_lr: float = 1e-7, max_lr: float = 1.0, num_steps: int = 100, window: int = 15,
                 divergence: float = 4.0, plan_epoch: int = 0, reference_lr: float | None = None) -> None:
        if not 0 < min_lr < max_lr:
            raise UserError(f"tune.min_lr={min_lr} and tune.max_lr={max_lr} must satisfy 0 < min_lr < max_lr "
                            "(e.g. 1e-7 and 1)")
        if num_steps < 10:
            raise UserError(f"tune.num_steps={num_steps} is too few for a curve: use at least 10 (e.g. 100)")
        if not divergence > 1:
            raise UserError(f"tune.divergence={divergence} must be > 1 (e.g. 4: stop at 4x the lowest loss)")
        if plan_epoch < 0:
            raise UserError(f"tune.plan_epoch={plan_epoch} must be >= 0 (the freeze plan's epoch to hold)")
        self.plan_epoch = int(plan_epoch)
        self.min_lr, self.max_lr, self.num_steps = float(min_lr), float(max_lr), int(num_steps)
        self.window, self.divergence, self.reference_lr = int(window), float(divergence), reference_lr
        self.result = RangeTestResult()
        self._ratios: list[float] = []

    def trainer_options(self) -> dict:
        """What the test changes in the run's Trainer: a fixed number of steps, no validation, no
        checkpoints."""
        return {"max_steps": self.num_steps, "max_epochs": -1, "limit_val_batches": 0,
                "num_sanity_val_steps": 0, "enable_checkpointing": False}

    def lr_at(self, step: int) -> float:
        """``optimizer.lr`` at ``step``: ``min_lr`` to ``max_lr``, evenly spaced in log."""
        return self.min_lr * (self.max_lr / self.min_lr) ** (step / (self.num_steps - 1))

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Hold the freeze plan at :attr:`plan_epoch` for every step."""
        for callback in trainer.callbacks:
            if isinstance(callback, FreezeScheduleCallback):
                callback.held_epoch = self.plan_epoch

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Read each group's LR relative to ``optimizer.lr``; pause the run's scheduler."""
        if not pl_module.automatic_optimization or len(trainer.optimizers) != 1:
            kind = getattr(pl_module, "kind", type(pl_module).__name__)
            raise UserError("tune=lr_find sweeps the learning rate of one optimizer, and "
                            f"model={kind} trains with several (manual optimization): lr-find is for "
                            "classifiers")
        reference = self.reference_lr or max(group["lr"] for group in trainer.optimizers[0].param_groups)
        self._ratios = [group["lr"] / reference for group in trainer.optimizers[0].param_groups]
        trainer.strategy.lr_scheduler_configs = []

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch,
                             batch_idx: int) -> None:
        """Set every group's LR for this step."""
        lr = self.lr_at(trainer.global_step)
        for group, ratio in zip(trainer.optimizers[0].param_groups, self._ratios, strict=True):
            group["lr"] = lr * ratio

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        """Record the step's loss; stop when it diverges."""
        loss = float(outputs["loss"] if isinstance(outputs, dict) else outputs)
        self.result.lrs.append(self.lr_at(trainer.global_step - 1))
        self.result.losses.append(loss)
        recent = float(np.mean(self.result.losses[-5:]))
        if not math.isfinite(recent):
            self.result.stopped = f"the loss became {loss} at lr {self.result.lrs[-1]:.2e}"
        elif len(self.result.losses) > 5 and recent > self.divergence * self._lowest_recent():
            self.result.stopped = (f"the loss diverged at lr {self.result.lrs[-1]:.2e} ({recent:.3g} > "
                                   f"{self.divergence:g}x its lowest)")
        if self.result.stopped != "completed":
            trainer.should_stop = True

    def _lowest_recent(self) -> float:
        """The lowest trailing 5-step mean of the loss so far."""
        losses = np.asarray(self.result.losses)
        return float(min(losses[max(0, i - 4):i + 1].mean() for i in range(len(losses))))

    def finish(self) -> RangeTestResult:
        """The suggestion from the recorded curve (finite losses only)."""
        lrs, losses = np.asarray(self.result.lrs), np.asarray(self.result.losses)
        finite = np.isfinite(losses)
        self.result.smoothed = smoothed(losses[finite], self.window).tolist()
        self.result.suggestion = suggest_lr(lrs[finite], losses[finite], self.window)
        return self.result

    def report(self, trainer: L.Trainer, out_dir: Path, current_lr: float | None) -> RangeTestResult:
        """Compute the suggestion; write ``lr_find.json`` and ``lr_find.png`` to ``out_dir`` and the curve
        to the run's loggers (``lr_find/loss``, ``lr_find/smoothed_loss``, ``lr_find/lr`` by step, and the
        figure as ``lr_find/curve`` in TensorBoard); log the outcome and print the override to paste."""
        result = self.finish()
        if not trainer.is_global_zero:
            return result
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "lr_find.json").write_text(json.dumps(asdict(result), indent=2))
        figure = curve_figure(result, current_lr)
        figure.savefig(out_dir / "lr_find.png", dpi=100, bbox_inches="tight")
        smooth = iter(result.smoothed)
        for step, (lr, loss) in enumerate(zip(result.lrs, result.losses, strict=True)):
            metrics = {"lr_find/lr": lr, "lr_find/loss": loss}
            if math.isfinite(loss):
                metrics["lr_find/smoothed_loss"] = next(smooth)
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=step)
        for logger in trainer.loggers:
            if hasattr(getattr(logger, "experiment", None), "add_figure"):
                logger.experiment.add_figure("lr_find/curve", figure, global_step=0)
            logger.finalize("success")
        import matplotlib.pyplot as plt

        plt.close(figure)
        log.info("lr-find: %d steps, lr %.1e to %.1e (%s); curve written to %s", len(result.lrs),
                 result.lrs[0], result.lrs[-1], result.stopped, out_dir / "lr_find.png")
        if result.suggestion is None:
            fix = ("raise tune.num_steps (it diverged before it fell)" if result.stopped != "completed"
                   else "raise tune.max_lr or tune.num_steps")
            raise UserError(f"lr-find: the loss never fell (by {MIN_FALL:.0%}) between lr "
                            f"{result.lrs[0]:.1e} and {result.lrs[-1]:.1e} ({out_dir / 'lr_find.png'}): "
                            f"{fix}, or check the data and the freeze plan")
        now = f" (the run's is optimizer.lr={current_lr:g})" if current_lr else ""
        log.info("lr-find: the smoothed loss falls fastest at lr %.2e%s", result.suggestion, now)
        print(f"suggested: optimizer.lr={result.suggestion:.2e}")
        return result


def curve_figure(result: RangeTestResult, current_lr: float | None):
    """The loss against the learning rate (log axis), raw and smoothed, the suggestion and the
    run's current ``optimizer.lr`` marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    lrs, losses = np.asarray(result.lrs), np.asarray(result.losses)
    finite = np.isfinite(losses)
    axis.plot(lrs[finite], losses[finite], color="0.75", linewidth=1, label="loss per step")
    axis.plot(lrs[finite], result.smoothed, color="C0", linewidth=2, label="smoothed")
    if result.suggestion is not None:
        axis.axvline(result.suggestion, color="C3", linestyle="--",
                     label=f"suggested optimizer.lr={result.suggestion:.2e}")
    if current_lr:
        axis.axvline(current_lr, color="0.4", linestyle=":", label=f"current optimizer.lr={current_lr:g}")
    low, high = float(losses[finite].min()), min(float(losses[finite].max()), 2 * result.smoothed[0])
    margin = 0.05 * (high - low) or 0.05 * abs(high) or 0.05
    axis.set_ylim(low - margin, high + margin)
    axis.set_xscale("log")
    axis.set_xlabel("optimizer.lr (other groups keep their ratio to it)")
    axis.set_ylabel("training loss")
    axis.set_title("learning-rate range test")
    axis.legend(fontsize=8)
    return figure
