"""``visionlab compare DIR...``: a ranked table of the runs under sweep or run directories.

Columns: the overrides that differ between the runs, the best value of ``--metric`` (default:
the runs' ``monitor``) and its epoch, every ``test/*`` metric, epochs, wall time and status
(finished, stopped early, failed). Writes ``compare.md`` and ``compare.png`` (the metric's
curves overlaid, one colour per run, labelled by its differing overrides) to the first
directory (or ``--out``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from omegaconf.errors import OmegaConfBaseException

from visionlab.cli.sweep import overrides_that_differ
from visionlab.errors import UserError, first_line
from visionlab.inference.runs import RunRecord, find_runs, read_run


def differing(records: list[RunRecord]) -> dict[Path, str]:
    """Each run's overrides that not every run shares, as one label (the run dir when none)."""
    own = overrides_that_differ([r.overrides for r in records])
    return {r.path: ",".join(mine) or r.path.name for r, mine in zip(records, own, strict=True)}


def rank(records: list[RunRecord], metric: str, top: int | None) -> list[RunRecord]:
    """Runs with a value of ``metric`` first, best first (see ``RunRecord.direction``); then the rest."""
    scored = [r for r in records if r.best(metric) is not None and r.status != "failed"]
    rest = [r for r in records if r not in scored]
    maximise = (scored[0].direction(metric) if scored else "max") == "max"
    scored.sort(key=lambda r: r.best(metric)[0], reverse=maximise)
    ranked = scored + rest
    return ranked[:top] if top else ranked


def table(records: list[RunRecord], metric: str, labels: dict[Path, str]) -> list[list[str]]:
    """Header and rows of the comparison table."""
    tests = sorted({tag for r in records for tag in r.curves if tag.startswith("test/")})
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(8, 5))
    for record in records:
        points = record.curves.get(metric)
        if points:
            epochs, values = zip(*points, strict=True)
            ax.plot(epochs, values, marker=".", label=labels[record.path][:60])
    ax.set(xlabel="epoch", ylabel=metric, title=f"{metric} per epoch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out, dpi=100)
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


def cmd_compare(directories: list[Path], metric: str | None, sort: str | None, top: int | None,
                out: Path | None) -> list[list[str]]:
    """Print, and write to ``compare.md`` / ``compare.png``, the ranked table of the runs found."""
    missing = [d for d in directories if not d.is_dir()]
    if missing:
        raise UserError(f"{missing[0]} is not a directory: give run or sweep directories "
                        "(e.g. outputs/multirun/<date>/<time>)")
    records = readable_runs(find_runs(directories))
    if not records:
        raise UserError(f"no runs under {', '.join(map(str, directories))} (a run directory holds "
                        ".hydra/config.yaml)")
    metric = metric or next((r.monitor for r in records if r.monitor), None)
    if metric is None:
        raise UserError("the runs have no monitor metric: choose one with --metric (e.g. val/acc)")
    for name in {metric, sort or metric}:
        if not any(name in record.curves for record in records):
            logged = sorted({key for record in records for key in record.curves if "/" in key})
            raise UserError(f"no run logged {name}: choose one the runs have ({', '.join(logged)})")
    labels = differing(records)
    ranked = rank(records, sort or metric, top)
    rows = table(ranked, metric, labels)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    out = out or directories[0]
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(markdown(rows))
    plot(ranked, metric, labels, out / "compare.png")
    print(f"written: {out / 'compare.md'}, {out / 'compare.png'}")
    return rows
