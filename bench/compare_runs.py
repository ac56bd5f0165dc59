"""Benchmark: ``visionlab compare`` over a generated outputs tree of 100 runs (target < 3 s).

    python bench/compare_runs.py              # 100 runs, 3 repetitions
    python bench/compare_runs.py --runs 300

Writes runs as train.py leaves them (``.hydra/config.yaml`` and ``overrides.yaml``, a TensorBoard
event file with 15 epochs of 8 scalars and the ``hparams/*`` summary, ``status.json``): a 5 lr x
4 freeze x 5 seed sweep. Times the whole command in a fresh process (imports included) and the
comparison alone in this one, alternating.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from common import alternate, load_average, median, print_table, timed

TAGS = ["train/loss", "train/acc", "val/loss", "val/acc", "val/f1", "lr-Adam/head", "freeze/trainable_stages",
        "epoch"]


def write_run(run_dir: Path, overrides: list[str], rng: random.Random) -> None:
    """One classifier run's files, with curves that rise to a random level."""
    from torch.utils.tensorboard import SummaryWriter

    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(
        "monitor: val/acc\nmode: max\ntrainer:\n  max_epochs: 15\nmodel:\n"
        "  _target_: visionlab.modules.classifier.ClassifierModule\n")
    (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    level = rng.uniform(0.4, 0.8)
    with SummaryWriter(str(run_dir / "tensorboard" / ",".join(overrides))) as writer:
        for epoch in range(15):
            for tag in TAGS:
                writer.add_scalar(tag, level * (1 - 0.9 ** (epoch + 1)) + rng.gauss(0, 0.01), epoch)
        for tag in ("hparams/test_acc", "hparams/best_val_acc", "hparams/wall_time_s"):
            writer.add_scalar(tag, level, 15)
    (run_dir / "checkpoints").mkdir()
    (run_dir / "status.json").write_text(json.dumps({"status": "finished", "overrides": overrides,
                                                     "value": level, "metric": "test/acc", "mode": "max"}))


def outputs_tree(root: Path, runs: int) -> Path:
    """A sweep folder of ``runs`` jobs over lr x freeze x seed."""
    rng, sweep = random.Random(0), root / "multirun" / "2026-12-07" / "10-00-00"
    for job in range(runs):
        lr, freeze, seed = job % 5, (job // 5) % 4, job // 20
        freezes = ["none", "feature_extraction", "last_n", "two_phase"]
        overrides = [f"optimizer.lr={10 ** -(lr % 3 + 2)}e0" if lr > 2 else f"optimizer.lr={10 ** -(lr + 2)}",
                     f"freeze={freezes[freeze]}", f"seed={seed}", "logger=[tensorboard,mlflow]"]
        write_run(sweep / str(job), overrides, rng)
    return sweep


def main() -> None:
    """Generate the tree, time the command and the comparison, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from visionlab.cli.compare import cmd_compare

    with tempfile.TemporaryDirectory() as tmp:
        sweep = outputs_tree(Path(tmp), args.runs)
        command = [sys.executable, "-m", "visionlab.cli.main", "compare", str(sweep), "--out", f"{tmp}/out"]

        def in_process() -> None:
            cmd_compare([sweep], None, None, None, Path(tmp) / "out")

        times = alternate({"command": lambda: timed(lambda: subprocess.run(command, check=True,
                                                                           capture_output=True)),
                           "in process": lambda: timed(in_process)}, args.repeats)
    print_table(f"visionlab compare over {args.runs} runs (median of {args.repeats}; {load_average()})",
                ["", "seconds"], [["visionlab compare DIR (fresh process)", median(times["command"])],
                                  ["cmd_compare alone (imports done)", median(times["in process"])]])


if __name__ == "__main__":
    main()
