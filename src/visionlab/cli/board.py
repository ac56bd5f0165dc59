"""``visionlab board [DIR ...]``: TensorBoard over runs, each named by what sets it apart.

TensorBoard names a run after its folder under ``--logdir``: pointed at ``outputs/``, a sweep job
is ``multirun/2026-12-02/12-23-05/0/tensorboard/freeze=two_phase,...``, cut in the UI before the
overrides that tell the runs apart. ``board`` gathers the runs under the folders given (default
``outputs``) into a folder of links named by the overrides that differ between them (with the
experiment, when runs of several are in view), and starts ``tensorboard`` on it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from visionlab.cli.sweep import overrides_that_differ
from visionlab.errors import UserError
from visionlab.inference.runs import find_runs, run_overrides

MAX_NAME = 120  # characters of a run's name; longer ones are cut and numbered


def event_folders(run_dir: Path) -> list[Path]:
    """The folders under ``<run>/tensorboard`` that hold event files, the training run's first."""
    folders = sorted({p.parent for p in (run_dir / "tensorboard").rglob("events.out.tfevents.*")})
    return sorted(folders, key=lambda folder: not (folder / "hparams.yaml").is_file())


def run_names(run_dirs: list[Path]) -> dict[Path, str]:
    """A short, unique, file-safe name per run: the overrides no other run in view shares (the run
    folder's own name when there are none)."""
    overrides = [run_overrides(run_dir) for run_dir in run_dirs]
    names: dict[Path, str] = {}
    taken: set[str] = set()
    for run_dir, own in zip(run_dirs, overrides_that_differ(overrides), strict=True):
        name = re.sub(r"[/\\:]+", "_", ",".join(own))[:MAX_NAME] or run_dir.name
        unique, number = name, 2
        while unique in taken:
            unique, number = f"{name} #{number}", number + 1
        taken.add(unique)
        names[run_dir] = unique
    return names


def link_runs(directories: list[Path], farm: Path) -> dict[str, Path]:
    """In ``farm``, a link per event folder of every run under ``directories``, named by
    :func:`run_names` (a run's further folders, such as ``eval``, as ``<name>/<folder>``)."""
    runs = [r for r in find_runs(directories) if event_folders(r)]
    if not runs:
        raise UserError(f"no runs with TensorBoard events under {', '.join(map(str, directories))} "
                        "(logger=tensorboard writes them to <run>/tensorboard/)")
    links: dict[str, Path] = {}
    for run_dir, name in run_names(runs).items():
        main, *others = event_folders(run_dir)
        links[name] = main
        links |= {f"{name}/{other.name}": other for other in others}
    for name, target in links.items():
        link = farm / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target.resolve(), target_is_directory=True)
    return links


def cmd_board(directories: list[Path], port: int, host: str) -> None:
    """Link the runs, print their names, and run TensorBoard on them until interrupted."""
    for directory in directories:
        if not directory.is_dir():
            raise UserError(f"{directory} is not a folder: give run, sweep or outputs directories")
    farm = Path(tempfile.mkdtemp(prefix="visionlab-board-"))
    try:
        links = link_runs(directories, farm)
        print(f"{len(links)} run(s), named by what sets them apart:")
        for name in links:
            print(f"  {name}")
        command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(farm), "--port", str(port),
                   "--host", host]
        with subprocess.Popen(command) as tensorboard:
            try:
                tensorboard.wait()
            except KeyboardInterrupt:
                tensorboard.terminate()
    finally:
        shutil.rmtree(farm, ignore_errors=True)
