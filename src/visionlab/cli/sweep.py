"""Sweeps that survive a failing job, and the line that sums a sweep up.

In a multirun (grid or Optuna) a job that raises — a bad value, an out-of-memory, a loss gone
NaN — is recorded as failed and the sweep goes on: the job's log keeps the error, its
``status.json`` says ``failed``, and its return value is NaN (Optuna records the trial as
failed). Each job writes ``status.json``; :class:`SweepCallback` reads them all at the end
and logs ``N finished, M failed; best <metric>=<value> (<the overrides that differ>)``.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from visionlab.inference.aggregate import group_by_overrides, mean_std_n
from visionlab.overrides import result_overrides

log = logging.getLogger(__name__)
STATUS_FILE = "status.json"


def write_status(job_dir: Path, status: str, overrides: list[str], value: float | None = None,
                 error: str | None = None, metric: str | None = None, mode: str | None = None) -> None:
    """``<job dir>/status.json``: finished or failed, the overrides, the returned value (the job's
    ``metric``, better when higher for ``mode=max``), the error."""
    job_dir.mkdir(parents=True, exist_ok=True)
    record = {"status": status, "overrides": overrides, "value": value, "error": error, "metric": metric,
              "mode": mode}
    (job_dir / STATUS_FILE).write_text(json.dumps(record, indent=2))


def overrides_that_differ(override_lists: list[list[str]]) -> list[list[str]]:
    """Each list without the overrides every list has: what distinguishes the runs of a sweep."""
    shared = set.intersection(*map(set, override_lists)) if override_lists else set()
    return [[o for o in overrides if o not in shared] for overrides in override_lists]


def read_statuses(sweep_dir: Path) -> list[dict]:
    """The ``status.json`` records of the jobs under ``sweep_dir``, in job order."""
    return [json.loads(p.read_text()) for p in sorted(sweep_dir.glob(f"*/{STATUS_FILE}"))]


def summarize(records: list[dict], metric: str | None, mode: str) -> str:
    """One line over a sweep's job records: how many finished and failed, and the best job, or,
    when the sweep varied the seed, the best group of jobs differing only in it (mean ± std, n).
    Jobs that return different metrics (a sweep over experiments of several model kinds) are
    ranked each among the jobs of its own metric."""
    records = [r | {"overrides": result_overrides(r["overrides"])} for r in records]
    finished = [r for r in records if r["status"] == "finished"]
    failed = len(records) - len(finished)
    line = f"sweep: {len(finished)} finished, {failed} failed"
    scored = [r for r in finished if r["value"] is not None and not math.isnan(r["value"])]
    by_metric: dict[tuple, list[dict]] = {}
    for record in scored:
        by_metric.setdefault((record.get("metric") or metric, record.get("mode") or mode), []).append(record)
    if len(by_metric) > 1:
        bests = [best_of(members, records, name, direction)
                 for (name, direction), members in by_metric.items()]
        return line + "; ranked per metric: " + "; ".join(bests)
    if not scored:
        return line
    return line + "; " + best_of(scored, records, metric, mode)


def best_of(scored: list[dict], records: list[dict], metric: str | None, mode: str) -> str:
    """``best <metric>=<value> (<the overrides that set it apart>)`` among ``scored`` (mean ± std over
    the seeds when they vary)."""
    pick = max if mode == "max" else min
    seeds = {o for r in records for o in r["overrides"] if o.partition("=")[0] == "seed"}
    if len(seeds) > 1:
        groups = {shared: [r["value"] for r in members]
                  for shared, members in group_by_overrides(scored, lambda r: r["overrides"], "seed").items()}
        shared, values = pick(groups.items(), key=lambda item: mean_std_n(item[1])[0])
        differing = overrides_that_differ([list(key) for key in groups])[list(groups).index(shared)]
        mean, spread, n = mean_std_n(values)
        return (f"best {metric}={mean:.4f} ± {spread:.4f} over {n} seeds "
                f"({', '.join(differing) or 'the shared overrides'})")
    best = pick(scored, key=lambda r: r["value"])
    differing = overrides_that_differ([r["overrides"] for r in records])[records.index(best)]
    return f"best {metric}={best['value']:.4f} ({', '.join(differing) or 'the shared overrides'})"


class SweepOutcome:
    """How many jobs of this process's last sweep failed, for the entry point's exit code."""

    failed = 0


class SweepCallback(Callback):
    """Hydra callback of every multirun: makes the sweep directory before the sweeper starts (the
    Optuna study's SQLite file lives there) and logs :func:`summarize` of the jobs at the end."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        """Create the sweep directory."""
        Path(config.hydra.sweep.dir).mkdir(parents=True, exist_ok=True)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        """Log the summary line (it also lands in the console); count the failed jobs."""
        records = read_statuses(Path(config.hydra.sweep.dir))
        log.info(summarize(records, config.get("optimized_metric"), config.get("mode", "max")))
        SweepOutcome.failed = sum(r["status"] == "failed" for r in records)
