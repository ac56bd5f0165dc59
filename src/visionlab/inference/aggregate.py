"""Runs that differ only in one key (the seed, by default) grouped, and their results as
mean ± std over the group: the answer to "is this difference more than seed noise?"."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from visionlab.inference.runs import RunRecord

T = TypeVar("T")


def mean_std_n(values: list[float]) -> tuple[float, float, int]:
    """(mean, sample standard deviation, n) of ``values`` (the deviation 0 for a single value)."""
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), spread, len(values)


@dataclass
class RunGroup:
    """Runs whose overrides are the same but for the key ``over``."""

    overrides: list[str]  # the shared overrides (the key ``over`` left out)
    records: list[RunRecord]

    def values(self, metric: str, best: bool) -> list[float]:
        """Each finished run's best (or last) value of ``metric``."""
        finished = [r for r in self.records if r.status != "failed"]
        picked = [(r.best(metric) or (None,))[0] if best else r.last(metric) for r in finished]
        return [value for value in picked if value is not None]

    def stats(self, metric: str, best: bool = True) -> tuple[float, float, int] | None:
        """(mean, sample standard deviation, n) of :meth:`values`; None without any."""
        values = self.values(metric, best)
        return mean_std_n(values) if values else None


def without_key(overrides: list[str], key: str) -> list[str]:
    """``overrides`` without the ones that set ``key``."""
    return [o for o in overrides if o.lstrip("+~").partition("=")[0] != key]


def group_by_overrides(items: list[T], overrides_of: Callable[[T], list[str]], over: str
                       ) -> dict[tuple[str, ...], list[T]]:
    """``items`` grouped by their overrides with ``over`` left out (the key: those overrides,
    sorted), in order of first appearance."""
    groups: dict[tuple[str, ...], list[T]] = {}
    for item in items:
        groups.setdefault(tuple(sorted(without_key(overrides_of(item), over))), []).append(item)
    return groups


def group_runs(records: list[RunRecord], over: str) -> list[RunGroup]:
    """``records`` grouped by their overrides with ``over`` left out, in order of first appearance."""
    groups = group_by_overrides(records, lambda record: record.overrides, over)
    return [RunGroup(without_key(members[0].overrides, over), members) for members in groups.values()]


def rank_groups(groups: list[RunGroup], metric: str) -> list[RunGroup]:
    """Groups with a value of ``metric`` first, best mean first; then the rest."""
    scored = [g for g in groups if g.stats(metric) is not None]
    rest = [g for g in groups if g not in scored]
    maximise = scored[0].records[0].direction(metric) == "max" if scored else True
    scored.sort(key=lambda g: g.stats(metric)[0], reverse=maximise)
    return scored + rest
