"""``visionlab compare DIR...``: a ranked table of the runs under sweep or run directories.

Columns: the overrides that differ between the runs, the best value of ``--metric`` (default:
the runs' ``monitor``) and its epoch, every ``test/*`` metric, epochs, wall time and status
(finished, stopped early, failed). Writes ``compare.md`` and ``compare.png`` (the metric's
curves overlaid, one colour per run, labelled by its differing overrides) to the first
directory (or ``--out``).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml
from omegaconf.errors import OmegaConfBaseException

from visionlab.cli.checks import positive
from visionlab.cli.commands import command
from visionlab.cli.sweep import overrides_that_differ
from visionlab.errors import UserError, first_line
from visionlab.inference.aggregate import RunGroup, group_runs, rank_groups
from visionlab.inference.runs import RunRecord, find_runs, read_run


def differing(records: list[RunRecord]) -> dict[Path, str]:
    """Each run's overrides that not every run shares, as one label; a run alone (or one like every
    other) by all its overrides (``experiment=dcgan_shapes``), else by its folder."""
    own = overrides_that_differ([r.overrides for r in records])
    return {r.path: ",".join(mine) or ",".join(r.overrides) or r.path.name
            for r, mine in zip(records, own, strict=True)}


def rank(records: list[RunRecord], metric: str, top: int | None) -> list[RunRecord]:
    """Runs with a value of ``metric`` first, best first (see ``RunRecord.direction``); then the rest."""
    scored = [r for r in records if r.best(metric) is not None and r.status != "failed"]
    rest = [r for r in records if r not in scored]
    maximise = (scored[0].direction(metric) if scored else "max") == "max"
    scored.sort(key=lambda r: r.best(metric)[0], reverse=maximise)
    ranked = scored + rest
    return ranked[:top] if top else ranked


def result_tags(records: list[RunRecord], metric: str) -> list[str]:
    """The final results shown beside ``metric``: every ``test/*`` metric; for runs that test nothing
    (the GAN family), their last ``val/*`` metrics (FID, KID, PSNR, SSIM, JS...)."""
    tags = {tag for r in records for tag in r.curves}
    tests = sorted(tag for tag in tags if tag.startswith("test/"))
    return tests or sorted(tag for tag in tags if tag.startswith("val/") and tag != metric)


def table(records: list[RunRecord], metric: str, labels: dict[Path, str]) -> list[list[str]]:
    """Header and rows of the comparison table."""
    tests = result_tags(records, metric)
    rows = [["#", "run", f"best {metric}", "epoch", *tests, "epochs", "wall time", "status"]]
    for index, record in enumerate(records, start=1):
        best = record.best(metric)
        value, epoch = (f"{best[0]:.4f}", str(best[1])) if best else ("-", "-")
        test_values = [f"{record.last(t):.4f}" if record.last(t) is not None else "-" for t in tests]
        seconds = f"{record.seconds:.0f} s" if record.seconds is not None else "-"
        rows.append([str(index), labels[record.path], value, epoch, *test_values, str(record.epochs), seconds,
                     record.status])
    return rows


def markdown(rows: list[list[str]]) -> str:
    """``rows`` as a Markdown table."""
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines) + "\n"


def plot(records: list[RunRecord], metric: str, labels: dict[Path, str], out: Path) -> None:
    """The curves of ``metric``, one colour per run, labelled by its differing overrides."""
    with chart(out, "epoch", metric, f"{metric} per epoch") as ax:
        for record in records:
            points = record.curves.get(metric)
            if points:
                epochs, values = zip(*points, strict=True)
                ax.plot(epochs, values, marker=".", label=labels[record.path][:60])


def plot_over_time(records: list[RunRecord], metric: str, labels: dict[Path, str], at_time: float, out: Path,
                   clock: str = "time/train_seconds") -> None:
    """The curves of ``metric`` against training time (``clock``), one colour per run, with the time
    the runs are compared at marked."""
    xlabel = "training time (s, validation left out)"
    with chart(out, xlabel, metric, f"{metric} against training time") as ax:
        for record in records:
            times = dict(record.curves.get(clock, []))
            points = [(times[epoch], value) for epoch, value in record.curves.get(metric, [])
                      if epoch in times]
            if points:
                seconds, values = zip(*points, strict=True)
                ax.plot(seconds, values, marker=".", label=labels[record.path][:60])
        ax.axvline(at_time, color="grey", linestyle="--")


@contextlib.contextmanager
def chart(out: Path, xlabel: str, ylabel: str, title: str) -> Iterator:
    """Axes for the block to draw on, then labelled, gridded, with a legend, saved to ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(8, 5))
    try:
        yield ax
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        figure.tight_layout()
        figure.savefig(out, dpi=100)
    finally:
        plt.close(figure)


def readable_runs(run_dirs: list[Path]) -> list[RunRecord]:
    """The runs whose files can be read; a line on stderr for each that cannot (a run killed while
    Hydra wrote its .hydra/ files, or two runs started in the same second into one directory)."""
    records = []
    for path in run_dirs:
        try:
            records.append(read_run(path))
        except (OSError, ValueError, yaml.YAMLError, OmegaConfBaseException) as err:
            print(f"skipped {path}: its run files cannot be read ({first_line(err)})", file=sys.stderr)
    return records


def seed_like_key(records: list[RunRecord], over: str | None) -> str | None:
    """The key to average runs over: ``over`` (a UserError naming the keys that differ when no run
    set it), else ``seed`` when the runs were given different seeds, else None."""
    if over == "none":
        return None
    if over is not None:
        if not any(r.override(over) is not None for r in records):
            keys = sorted({o.lstrip("+~").partition("=")[0] for own in overrides_that_differ(
                [r.overrides for r in records]) for o in own})
            raise UserError(f"--over {over}: no run sets {over}; the keys that differ between the runs: "
                            f"{', '.join(keys) or '(none)'}")
        return over
    seeds = {r.override("seed") for r in records}
    return "seed" if len(seeds - {None}) > 1 else None


def group_labels(groups: list[RunGroup]) -> dict[int, str]:
    """Each group's overrides that not every group shares (all of them for a group alone; ``(all
    runs)`` when there are none), keyed by ``id(group)``."""
    own = overrides_that_differ([g.overrides for g in groups])
    return {id(g): ",".join(mine) or ",".join(g.overrides) or "(all runs)"
            for g, mine in zip(groups, own, strict=True)}


def group_table(groups: list[RunGroup], metric: str, over: str, labels: dict[int, str]) -> list[list[str]]:
    """Header and rows of the groups' table: mean ± std and n of the best ``metric`` and of every
    ``test/*`` metric over the runs of a group (the runs differing only in ``over``)."""
    tests = result_tags([r for g in groups for r in g.records], metric)
    rows = [["#", f"group (over {over})", f"best {metric}", *tests, "n", "failed"]]
    for index, group in enumerate(groups, start=1):
        cells = [mean_std(group.stats(metric))] + [mean_std(group.stats(t, best=False)) for t in tests]
        failed = sum(r.status == "failed" for r in group.records)
        count = (group.stats(metric) or (0, 0, 0))[2]
        rows.append([str(index), labels[id(group)], *cells, str(count), str(failed)])
    return rows


def mean_std(stats: tuple[float, float, int] | None) -> str:
    """``0.7111 ± 0.0123``; one value alone, without a spread it does not have (``-`` without values)."""
    if not stats:
        return "-"
    return f"{stats[0]:.4f} ± {stats[1]:.4f}" if stats[2] > 1 else f"{stats[0]:.4f}"


def plot_groups(groups: list[RunGroup], metric: str, over: str, labels: dict[int, str], out: Path) -> None:
    """Each group's mean curve of ``metric`` per epoch, with the standard deviation over its runs as
    error bars."""
    with chart(out, "epoch", metric, f"{metric} per epoch: mean ± std over {over}") as ax:
        for group in groups:
            by_epoch: dict[int, list[float]] = {}
            for record in group.records:
                for epoch, value in record.curves.get(metric, []):
                    by_epoch.setdefault(epoch, []).append(value)
            if by_epoch:
                epochs = sorted(by_epoch)
                means = [statistics.fmean(by_epoch[e]) for e in epochs]
                spreads = [statistics.stdev(by_epoch[e]) if len(by_epoch[e]) > 1 else 0.0 for e in epochs]
                n = len(group.records)
                ax.errorbar(epochs, means, yerr=spreads, marker=".", capsize=3,
                            label=f"{labels[id(group)]} (n={n})"[:70])


def compare_kind(records: list[RunRecord], metric: str, sort: str | None, top: int | None, over: str | None,
                 plot_to: Path, at_time: float | None = None) -> list[list[str]]:
    """The table of runs of one model kind (averaged over ``over`` or the seeds when they vary),
    its figure written to ``plot_to``; with ``at_time``, ``metric`` is each run's value at that many
    seconds of training (:meth:`RunRecord.at_time`), the runs ranked by it and drawn against time."""
    if at_time is None:
        return kind_table(records, metric, sort, top, over, plot_to)
    rows = kind_table([r.at_time(metric, at_time) for r in records], metric, None, top, over, None)
    plot_over_time(records, metric, differing(records), at_time, plot_to)
    rows[0] = [cell.replace(f"best {metric}", f"{metric} at {at_time:g} s") for cell in rows[0]]
    return rows


def kind_table(records: list[RunRecord], metric: str, sort: str | None, top: int | None, over: str | None,
               plot_to: Path | None) -> list[list[str]]:
    """The ranked table of :func:`compare_kind` (runs, or groups of runs over ``over`` or the seeds),
    its per-epoch figure written to ``plot_to`` unless None."""
    key = seed_like_key(records, over)
    if key is None:
        labels = differing(records)  # told apart among all the runs, before --top keeps some
        ranked = rank(records, sort or metric, top)
        if plot_to is not None:
            plot(ranked, metric, labels, plot_to)
        return kept_of(table(ranked, metric, labels), len(records), top, "runs")
    groups = rank_groups(group_runs(records, key), sort or metric)
    labels = group_labels(groups)
    kept = groups[:top or None]
    if plot_to is not None:
        plot_groups(kept, metric, key, labels, plot_to)
    return kept_of(group_table(kept, metric, key, labels), len(groups), top, "groups")


def kept_of(rows: list[list[str]], total: int, top: int | None, what: str) -> list[list[str]]:
    """``rows`` with the header's second column saying how many of how many ``what`` ``--top`` kept."""
    if top and top < total:
        rows[0][1] += f" (best {top} of {total} {what})"
    return rows


def cmd_compare(directories: list[Path], metric: str | None, sort: str | None, top: int | None,
                out: Path | None, over: str | None = None, at_time: float | None = None) -> list[list[str]]:
    """Print, and write to ``compare.md`` / ``compare.png``, the ranked table of the runs found: per
    model kind and data (a GAN's FID is not ranked against a classifier's accuracy, nor an accuracy
    on one folder against one on another), and as mean ± std over
    the runs that differ only in ``over`` (default: the seed, when the runs vary it)."""
    missing = [d for d in directories if not d.is_dir()]
    if missing:
        raise UserError(f"{missing[0]} is not a directory: give run or sweep directories "
                        "(e.g. outputs/multirun/<date>/<time>)")
    records = readable_runs(find_runs(directories))
    if not records:
        raise UserError(f"no runs under {', '.join(map(str, directories))} (a run directory holds "
                        ".hydra/config.yaml)")
    for name in {metric, sort} - {None}:
        if not any(name in record.curves for record in records):
            logged = sorted({key for record in records for key in record.curves if "/" in key})
            raise UserError(f"no run logged {name}: choose one the runs have ({', '.join(logged)})")
    groups = ranked_apart(records)
    out = out or directories[0]
    out.mkdir(parents=True, exist_ok=True)
    sections = []
    for name, members in groups.items():
        own_metric = metric if metric and any(metric in r.curves for r in members) else None
        own_metric = own_metric or next((r.monitor for r in members if r.monitor in r.curves), None)
        logged_val = sorted(t for r in members for t in r.curves if t.startswith("val/"))
        own_metric = own_metric or next(iter(logged_val), None)  # no monitor (a GAN without FID)
        if own_metric is None:
            print(f"{name}: {len(members)} run(s) without a monitor or val/* metric, not ranked "
                  "(--metric names one)", file=sys.stderr)
            continue
        figure = out / ("compare.png" if len(groups) == 1 else f"compare-{figure_name(name)}.png")
        rows = compare_kind(members, own_metric, sort if sort and any(sort in r.curves for r in members)
                            else None, top, over, figure, at_time)
        sections.append((name, rows, figure))
    if not sections:
        raise UserError("the runs have no monitor or val/* metric: choose one with --metric (e.g. val/acc)")
    for name, rows, _ in sections:
        if len(sections) > 1:
            print(f"\n{name} ({len(rows) - 1} row(s)):")
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    text = (markdown(sections[0][1]) if len(sections) == 1
            else "\n".join(f"## {name}\n\n{markdown(rows)}" for name, rows, _ in sections))
    (out / "compare.md").write_text(text)
    print(f"written: {out / 'compare.md'}, {', '.join(str(figure) for _, _, figure in sections)}")
    return sections[0][1]


def ranked_apart(records: list[RunRecord]) -> dict[str, list[RunRecord]]:
    """The runs by model kind and data, each group under its name: the kind (``ClassifierModule``),
    with ``on <data>`` after it when runs of that kind trained on different data (an accuracy on one
    folder says nothing of one on another)."""
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for record in records:
        groups.setdefault((record.kind or "runs", record.data), []).append(record)
    kinds = [kind for kind, _ in groups]
    return {f"{kind} on {data}" if kinds.count(kind) > 1 else kind: members
            for (kind, data), members in groups.items()}


def figure_name(section: str) -> str:
    """``section`` as a file name: ``ClassifierModule on /data/faces`` is
    ``ClassifierModule-on-_data_faces``."""
    return re.sub(r"[^\w.=-]+", "_", section.replace(" on ", "-on-"))


def compare_arguments(parser: argparse.ArgumentParser) -> None:
    """The folders, the metric and how to rank, keep and group."""
    parser.add_argument("directories", nargs="+", type=Path, help="run, sweep or outputs directories")
    parser.add_argument("--metric", default=None, help="metric to rank and plot (default: the monitor)")
    parser.add_argument("--sort", default=None, help="rank by this metric instead of --metric")
    parser.add_argument("--top", type=int, default=None, help="only the N best runs")
    parser.add_argument("--out", type=Path, default=None, help="folder for compare.md/png (default: DIR)")
    parser.add_argument("--at-time", type=float, default=None, metavar="SECONDS",
                        help="compare the metric's value at this much training time (a GAN's FID evaluations "
                             "log it), as if every run had stopped then")
    parser.add_argument("--over", default=None,
                        help="average the runs that differ only in this key: mean ± std and n per group "
                             "(default: seed, when the runs vary it; none: every run on its own row)")


def check_compare(args: argparse.Namespace) -> argparse.Namespace:
    """``--top`` and ``--at-time`` are positive (the folders are checked by cmd_compare, which tests call
    directly)."""
    positive(args.top, "--top")
    if args.at_time is not None and args.at_time <= 0:
        raise UserError(f"--at-time {args.at_time:g} must be a number of seconds above 0")
    return args


@command("compare", "rank the runs under sweep or run directories; write compare.md and compare.png",
         compare_arguments, check_compare)
def run_compare(args: argparse.Namespace) -> None:
    """:func:`cmd_compare` on the parsed arguments."""
    cmd_compare(args.directories, args.metric, args.sort, args.top, args.out, args.over, args.at_time)
