"""``visionlab board [DIR ...]``: TensorBoard over runs, each named by what sets it apart.

TensorBoard names a run after its folder under ``--logdir``: pointed at ``outputs/``, a sweep job
is ``multirun/2026-12-02/12-23-05/0/tensorboard/freeze=two_phase,...``, cut in the UI before the
overrides that tell the runs apart. ``board`` gathers the runs under the folders given (default
``outputs``) into a folder of links named by the overrides that differ between them (with the
experiment, when runs of several are in view; keys by their last part, ``lr=0.001,seed=1``, so that
HPARAMS' Trial ID column, which cuts long names, still tells the rows apart), and starts
``tensorboard`` on it, quietly: its notes about TensorFlow and fast loading are not a user's
concern. SIGTERM and SIGHUP, like Ctrl+C, stop TensorBoard and remove the folder of links.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from visionlab.cli.commands import command
from visionlab.cli.sweep import overrides_that_differ
from visionlab.errors import UserError
from visionlab.inference.runs import find_runs, run_overrides
from visionlab.overrides import result_overrides

MAX_NAME = 120  # characters of a run's name (see fitted)


def event_folders(run_dir: Path) -> list[Path]:
    """The folders under ``<run>/tensorboard`` that hold event files, the training run's first."""
    folders = sorted({p.parent for p in (run_dir / "tensorboard").rglob("events.out.tfevents.*")})
    return sorted(folders, key=lambda folder: not (folder / "hparams.yaml").is_file())


def run_names(run_dirs: list[Path]) -> dict[Path, str]:
    """A short, unique, file-safe name per run: the overrides not every run in view shares (the run
    folder's own name when there are none), within :data:`MAX_NAME` (see :func:`fitted`)."""
    overrides = [result_overrides(run_overrides(run_dir)) for run_dir in run_dirs]
    differing = overrides_that_differ(overrides)
    short = short_keys({o.partition("=")[0] for own in differing for o in own})
    readables = [[re.sub(r"[/\\:]+", "_", f"{short.get(key, key)}={value}")
                  for key, _, value in (o.partition("=") for o in own)] for own in differing]
    shared_by = Counter(o for readable in readables for o in readable)
    names: dict[Path, str] = {}
    taken: set[str] = set()
    for run_dir, readable in zip(run_dirs, readables, strict=True):
        name = fitted(readable, shared_by) or run_dir.name
        unique, number = name, 2
        while unique in taken:
            unique, number = f"{name} #{number}", number + 1
        taken.add(unique)
        names[run_dir] = unique
    return names


def fitted(readable: list[str], shared_by: Counter) -> str:
    """``readable`` (a run's overrides) joined within :data:`MAX_NAME` characters: when too long,
    the overrides most runs share are left out first, and a trailing ``…`` says some were (a plain
    cut dropped the end, where two runs of a long name may be all that tells them apart)."""
    kept = list(readable)
    while len(",".join(kept)) > MAX_NAME and len(kept) > 1:
        kept.remove(max(kept, key=lambda override: shared_by[override]))
    return (",".join(kept) + ("…" if len(kept) < len(readable) else ""))[:MAX_NAME]


def short_keys(keys: set[str]) -> dict[str, str]:
    """Each dotted key by its last part (``optimizer.lr`` -> ``lr``) where no other key ends the same."""
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return {key: key.rsplit(".", 1)[-1] for key in keys if last.count(key.rsplit(".", 1)[-1]) == 1}


def link_runs(directories: list[Path], farm: Path) -> dict[str, Path]:
    """In ``farm``, a link per event folder of every run under ``directories``, named by
    :func:`run_names` (a run's further folders, such as ``eval``, as ``<name> [<folder>]``: a link
    inside the run's own link would be written into the run's folder)."""
    runs = [r for r in find_runs(directories) if event_folders(r)]
    if not runs:
        raise UserError(f"no runs with TensorBoard events under {', '.join(map(str, directories))} "
                        "(logger=tensorboard writes them to <run>/tensorboard/)")
    links: dict[str, Path] = {}
    for run_dir, name in run_names(runs).items():
        main, *others = event_folders(run_dir)
        links[name] = main  # its own folders (the HPARAMS session's) come with it
        others = [other for other in others if not other.is_relative_to(main)]
        links |= {f"{name} [{other.name}]": other for other in others}
    farm.mkdir(parents=True, exist_ok=True)
    for name, target in links.items():
        (farm / name).symlink_to(target.resolve(), target_is_directory=True)
    return links


class Stop(Exception):
    """SIGTERM or SIGHUP arrived: stop as Ctrl+C does."""


def stop_on_signal(signum, frame) -> None:
    """Turn SIGTERM / SIGHUP into :class:`Stop` in the main thread."""
    raise Stop(signal.Signals(signum).name)


def cmd_board(directories: list[Path], port: int, host: str) -> None:
    """Link the runs, print their names, and run TensorBoard on them until Ctrl+C, SIGTERM or SIGHUP,
    which stop TensorBoard and remove the links."""
    for directory in directories:
        if not directory.is_dir():
            raise UserError(f"{directory} is not a folder: give run, sweep or outputs directories")
    farm = Path(tempfile.mkdtemp(prefix="visionlab-board-"))
    previous = {sig: signal.signal(sig, stop_on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        links = link_runs(directories, farm)
        print(f"{len(links)} run(s), named by what sets them apart:")
        for name in links:
            print(f"  {name}")
        command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(farm), "--port", str(port),
                   "--host", host]
        print(f"TensorBoard at http://{'localhost' if host in ('localhost', '0.0.0.0') else host}:{port}/ "
              "(Ctrl+C to stop)", flush=True)
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "text": True}
        with subprocess.Popen(command, **quiet) as tensorboard:
            try:
                _, errors = tensorboard.communicate()
            except (KeyboardInterrupt, Stop):
                tensorboard.terminate()
                tensorboard.wait(timeout=30)
                return
        if tensorboard.returncode:  # it failed to start (a port in use...): its own words
            lines = [line for line in errors.splitlines() if line.strip()]
            lines = lines or [f"exit code {tensorboard.returncode}"]
            raise UserError(f"tensorboard stopped: {lines[-1]}")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(farm, ignore_errors=True)


def board_arguments(parser: argparse.ArgumentParser) -> None:
    """The folders, the port and the host."""
    parser.add_argument("directories", nargs="*", type=Path, default=[Path("outputs")],
                        help="run, sweep or outputs directories (default: outputs)")
    parser.add_argument("--port", type=int, default=6006)
    parser.add_argument("--host", default="localhost", help="0.0.0.0 to serve other machines")


@command("board", "TensorBoard over the runs under DIRs, each named by the overrides that set it apart",
         board_arguments)
def run_board(args: argparse.Namespace) -> None:
    """:func:`cmd_board` on the parsed arguments."""
    cmd_board(args.directories, args.port, args.host)
