"""A Lightning callback the benchmarks add to a run (``+callbacks.step_timer._target_=step_timer.StepTimer``,
with ``bench/`` on ``PYTHONPATH``): the wall time of the training batches after the first epoch.

Each epoch's span runs from its first batch's start to its last batch's end (on a GPU, when its
kernels have run), so it holds the
steps and the data loading between them, and neither start-up, the first epoch's warm-up nor
validation. The spans and their batch counts are written as JSON to ``out`` at the end of fit.
It uses Lightning's callback hooks only, so any commit's ``train.py`` takes it.
"""

from __future__ import annotations

import json
import time

import lightning as L
import torch


class StepTimer(L.Callback):
    """Seconds and batches of every training epoch after the first, written to ``out``."""

    def __init__(self, out: str) -> None:
        self.out = out
        self.epochs: list[dict] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if batch_idx == 0:
            self.epochs.append({"epoch": trainer.current_epoch, "batches": 0, "start": time.perf_counter()})

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()  # the span ends when the step's kernels have run
        self.epochs[-1]["batches"] += 1
        self.epochs[-1]["end"] = time.perf_counter()

    def on_fit_end(self, trainer, module) -> None:
        steady = self.epochs[1:]
        seconds = sum(e["end"] - e["start"] for e in steady)
        batches = sum(e["batches"] for e in steady)
        with open(self.out, "w") as f:
            json.dump({"seconds": seconds, "batches": batches, "epochs": len(steady)}, f)
