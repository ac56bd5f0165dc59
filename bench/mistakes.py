"""How long a user waits for the one line that names their mistake.

Runs the battery of ``tests/test_mistakes.py`` as a user would, each mistake a fresh process
(``visionlab ...`` or ``python train.py ...``), and prints per mistake its seconds, exit code and
whether stderr held exactly one ``error:`` line and no traceback; then the median per category.
The command checks (a wrong file or value given to eval / predict / export / sample) come before
torch loads; mistakes in a training config are found after the imports (about 5 s here), when
the objects that judge them exist.

    python bench/mistakes.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from common import ROOT, load_average, median, print_table

sys.path.insert(0, str(ROOT / "tests"))
from test_mistakes import MISTAKES, SMALL, build_workspace  # noqa: E402


def classifier_run(ws: Path, env: dict[str, str]) -> tuple[Path, Path]:
    """A tiny classifier run trained here by ``python train.py``: its directory and best checkpoint."""
    run_dir = ws / "classifier_run"
    subprocess.run([sys.executable, str(ROOT / "train.py"), *SMALL, f"hydra.run.dir={run_dir}"],
                   cwd=ws, env=env, check=True, capture_output=True)
    return run_dir, next((run_dir / "checkpoints").glob("epoch_*.ckpt"))


def run_mistake(argv: list[str], ws: Path, env: dict[str, str]) -> tuple[float, int, bool]:
    """(seconds, exit code, one error line and no traceback) of one mistake in a fresh process."""
    command = ([sys.executable, str(ROOT / "train.py"), *argv[1:]] if argv[0] == "train"
               else [shutil.which("visionlab") or "visionlab", *argv])
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ws, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    return seconds, result.returncode, len(errors) == 1 and "Traceback" not in result.stderr


def main() -> None:
    """Build the workspace, run every mistake, print the table and the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="names of mistakes to run (default: all)")
    names = parser.parse_args().only or list(MISTAKES)
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp)
        env = {**os.environ, "VISIONLAB_DATA_DIR": str(ws / "data"), "PROJECT_ROOT": str(ws)}
        paths = build_workspace(ws, *classifier_run(ws, env), Path(env["VISIONLAB_DATA_DIR"]))
        rows, by_category = [], defaultdict(list)
        for name in names:
            mistake = MISTAKES[name]
            seconds, code, one_line = run_mistake([a.format(**paths) for a in mistake.argv], ws, env)
            rows.append([name, mistake.category, f"{seconds:.2f}", code, "yes" if one_line else "NO"])
            by_category[mistake.category].append(seconds)
            print(f"{seconds:6.2f}s  exit {code}  {name}", flush=True)
    print_table(f"Mistakes ({load_average()})", ["mistake", "category", "seconds", "exit", "one line"], rows)
    print_table("Median seconds per category", ["category", "mistakes", "median s", "max s"],
                [[c, len(v), f"{median(v):.2f}", f"{max(v):.2f}"] for c, v in by_category.items()])
    failed = [row[0] for row in rows if row[3] != 2 or row[4] != "yes"]
    print(f"{len(rows) - len(failed)} of {len(rows)} mistakes: exit 2 with one error line"
          + (f"; not: {', '.join(failed)}" if failed else ""))


if __name__ == "__main__":
    main()
