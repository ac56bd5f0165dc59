"""Read finished (or failed) run directories back: overrides, metrics, status, wall time.

Works on any run train.py wrote, before or after this module existed: a run directory is
one with ``.hydra/config.yaml``; its overrides come from ``.hydra/overrides.yaml``, its
metrics from the TensorBoard event files (or ``csv/metrics.csv``), its status from
``status.json`` (sweeps) or else from what it left behind.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from visionlab.overrides import result_overrides

LOWER_IS_BETTER = ("loss", "fid", "kid", "js")
@dataclass
class RunRecord:
    """What one run did: its overrides, metric curves and final values, status, wall time."""

    path: Path
    overrides: list[str]
    monitor: str | None
    mode: str
    max_epochs: int | None
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # tag -> [(epoch, value)]
    status: str = "finished"
    seconds: float | None = None
    kind: str = ""  # the model's class (ClassifierModule, GANModule...): runs of one kind compare
    data: str = ""  # what it trained on (see data_identity): runs on other data are ranked apart

    def override(self, key: str) -> str | None:
        """The value this run's command line gave ``key`` (None if it gave none)."""
        return next((o.partition("=")[2] for o in self.overrides if o.lstrip("+~").partition("=")[0] == key),
                    None)

    def direction(self, metric: str) -> str:
        """``max`` or ``min``: the run's ``mode`` for its ``monitor``; for another metric, lower is
        better for losses and distances (``loss``, ``fid``, ``kid``, ``js`` in the name)."""
        if metric == self.monitor:
            return self.mode
        return "min" if any(word in metric for word in LOWER_IS_BETTER) else "max"

    def best(self, metric: str) -> tuple[float, int] | None:
        """(best value, its epoch) of ``metric`` (see :meth:`direction`), or None if never logged."""
        points = self.curves.get(metric)
        if not points:
            return None
        epoch, value = (max if self.direction(metric) == "max" else min)(points, key=lambda p: p[1])
        return value, epoch

    def last(self, metric: str) -> float | None:
        """The last logged value of ``metric``."""
        points = self.curves.get(metric)
        return points[-1][1] if points else None

    def at_time(self, metric: str, seconds: float, clock: str = "time/train_seconds") -> RunRecord:
        """This run as of ``seconds`` of training (``clock``: the training wall time logged at each
        evaluation, validation left out): ``metric`` holds one point, its value at the last evaluation
        made by then (none when there was none), so that runs are compared at equal time."""
        times = dict(self.curves.get(clock, []))
        made = [(epoch, value) for epoch, value in self.curves.get(metric, [])
                if epoch in times and times[epoch] <= seconds]
        return dataclasses.replace(self, curves=self.curves | {metric: made[-1:]})

    @property
    def epochs(self) -> int:
        """Epochs the run trained (the highest epoch any metric was logged at, plus one). The test
        metrics and the ``hparams/*`` and ``run/*`` summary are left out: Lightning logs the test
        one epoch past the last trained, and the summary once, at the run's last optimizer step,
        which for a GAN (``d_steps + 1`` steps per batch) is no step an epoch was logged at."""
        summary = ("test/", "hparams/", "run/")
        return 1 + max((e for tag, points in self.curves.items() if not tag.startswith(summary)
                        for e, _ in points), default=-1)


def find_runs(roots: list[Path]) -> list[Path]:
    """Every run directory under ``roots`` (a run dir itself, a sweep dir, or outputs/)."""
    found = []
    for root in roots:
        found += [p.parent.parent for p in sorted(root.rglob(".hydra/config.yaml"))]
    return sorted(set(found))


def _event_curves(run_dir: Path) -> tuple[dict[str, list[tuple[int, float]]], float | None]:
    """Per-epoch curves of every scalar tag in the run's TensorBoard events, and the wall time."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    curves: dict[str, list[tuple[int, float]]] = {}
    times: list[float] = []
    for events in sorted({p.parent for p in run_dir.glob("tensorboard/**/events.out.tfevents.*")}):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        tags = accumulator.Tags()["scalars"]
        epochs = {e.step: int(e.value) for e in accumulator.Scalars("epoch")} if "epoch" in tags else {}
        for tag in tags:
            if tag == "epoch":
                continue
            for event in accumulator.Scalars(tag):
                curves.setdefault(tag, []).append((epochs.get(event.step, event.step), event.value))
                times.append(event.wall_time)
    seconds = max(times) - min(times) if times else None
    return curves, seconds


def _csv_curves(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Per-epoch curves from ``csv/metrics.csv`` (the csv logger)."""
    curves: dict[str, list[tuple[int, float]]] = {}
    path = run_dir / "csv" / "metrics.csv"
    if not path.is_file():
        return curves
    for row in csv.DictReader(path.open()):
        epoch = int(float(row.get("epoch") or 0))
        for key, value in row.items():
            if key not in ("epoch", "step") and value:
                curves.setdefault(key, []).append((epoch, float(value)))
    return curves


def run_overrides(run_dir: Path) -> list[str]:
    """The command-line overrides of the run in ``run_dir`` (none when it kept no record)."""
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    return [str(o) for o in OmegaConf.load(overrides_file)] if overrides_file.is_file() else []


def data_identity(config: DictConfig) -> str:
    """What a run trained on, as its config names it: an image folder's ``data.root``, a shapes
    ``variant``, a torchvision dataset's ``name``, a toy ``shape``; "" for a run that names none."""
    data = config.get("data")  # read unresolved: an interpolation may need Hydra's runtime
    raw = OmegaConf.to_container(data, resolve=False) if isinstance(data, DictConfig) else {}
    return next((str(raw[key]) for key in ("root", "variant", "name", "shape") if raw.get(key)), "")


def read_run(run_dir: Path) -> RunRecord:
    """A :class:`RunRecord` of ``run_dir``."""
    config = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    record = RunRecord(run_dir, result_overrides(run_overrides(run_dir)), config.get("monitor"),
                       config.get("mode", "max"),
                       OmegaConf.select(config, "trainer.max_epochs", default=None),
                       kind=str(OmegaConf.select(config, "model._target_", default="")).rsplit(".", 1)[-1],
                       data=data_identity(config))
    record.curves, record.seconds = _event_curves(run_dir)
    if not record.curves:
        record.curves = _csv_curves(run_dir)
    for tag in ("run/wall_time_s", "hparams/wall_time_s"):  # the whole run (the second: before 2026-12-07)
        if tag in record.curves:
            record.seconds = record.curves[tag][-1][1]
            break
    status_file = run_dir / "status.json"
    if status_file.is_file():
        record.status = json.loads(status_file.read_text())["status"]
    elif not (run_dir / "checkpoints").is_dir():
        record.status = "failed"
    if record.status == "finished" and record.max_epochs and 0 < record.epochs < record.max_epochs:
        record.status = "stopped early"
    return record
