"""Benchmark: generator steps per second of the GAN presets, this checkout against another commit.

    python bench/gan_throughput.py                        # against 40578af, 3 epochs, 3 repetitions
    python bench/gan_throughput.py --against HEAD~3 --presets dcgan_shapes --repeats 5
    python bench/gan_throughput.py --against none --options "" model.channels_last=true \
        model.compile=true trainer.precision=bf16-mixed       # speed options, this checkout alone

Each preset runs as shipped (``python train.py experiment=<preset>``, FID off and a CSV logger:
the evaluation is not the step) for ``--epochs`` epochs in a fresh process, in this checkout and
in a git worktree of ``--against``, alternating, with the same data folder. A callback
(``bench/step_timer.py``) times the training batches after the first epoch, data loading between
them included, so start-up and warm-up are not counted. Steps are generator steps (batches).
``--options`` runs this checkout once per string of overrides (space-separated; "" for none) as
sides of their own. The table reports the median steps/s and the ratio to the first side
(``--against``, else the first option); the issue's target for both presets is >= 1.5 against 40578af.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import QUIET, ROOT, alternate, load_average, median, print_table

PRESETS = ("dcgan_shapes", "gan_backbone_d_shapes")


def worktree(commit: str, folder: Path) -> Path:
    """A checkout of ``commit`` in ``folder`` (removed by the caller's temporary directory)."""
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), commit], check=True,
                   capture_output=True)
    return folder


def steps_per_second(checkout: Path, preset: str, epochs: int, folder: Path, overrides: list[str],
                     number: list[int]) -> float:
    """Generator steps/s of one run of ``preset`` in ``checkout`` (its own ``src`` first on the path)."""
    number[0] += 1
    out = folder / f"timing{number[0]}.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(checkout / "src"), str(ROOT / "bench")])}
    subprocess.run([sys.executable, str(checkout / "train.py"), f"experiment={preset}",
                    f"trainer.max_epochs={epochs}", "model.fid_every=0", "logger=csv", *QUIET,
                    "+callbacks.step_timer._target_=step_timer.StepTimer", f"+callbacks.step_timer.out={out}",
                    f"hydra.run.dir={folder / f'run{number[0]}'}", f"paths.data_dir={folder / 'data'}",
                    *overrides],
                   check=True, capture_output=True, env=env)
    timing = json.loads(out.read_text())
    return timing["batches"] / timing["seconds"]


def main() -> None:
    """Alternate this checkout and ``--against`` per preset; print steps/s and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="40578af", help="a commit; none: this checkout alone")
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run; the first is not timed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--options", nargs="+", default=[""], help="override strings, each a side")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder, number = Path(tmp), [0]
        sides = {}  # name -> (checkout, overrides)
        if args.against != "none":
            sides[args.against] = (worktree(args.against, folder / "against"), [])
        for options in args.options:
            sides[f"this checkout {options}".strip()] = (ROOT, options.split())
        for preset in args.presets:
            measures = {name: (lambda side=side, preset=preset: steps_per_second(
                side[0], preset, args.epochs, folder, side[1], number)) for name, side in sides.items()}
            rates = {name: median(values) for name, values in alternate(measures, args.repeats).items()}
            reference = next(iter(rates.values()))
            rows += [[f"{preset} ({name})", rate, rate / reference] for name, rate in rates.items()]
        if args.against != "none":
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(folder / "against")],
                           check=True)
    print_table(f"generator steps/s, epochs 2-{args.epochs} (median of {args.repeats}; {load_average()})",
                ["", "steps/s", f"vs {next(iter(sides))}"], rows)


if __name__ == "__main__":
    main()
