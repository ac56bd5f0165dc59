"""Benchmark: start-up time and peak memory of runs, against the import time of the stack alone.

    python bench/startup.py                # 3 repetitions of each
    python bench/startup.py --repeats 5

Measures, each in a fresh interpreter, alternating:

- ``python -c "import torch, lightning, timm"``: the import floor every run pays;
- ``python train.py --cfg job``: composing and printing the config (target < 1.0 s);
- launch to the first training step of the default job: a callback added with
  ``+callbacks.first_step=...`` reports the moment the first batch starts and ends the
  process (target: at most 3 s above the import floor);
- peak resident memory (``wait4`` of the child) of the whole default job, and of two
  training steps of a 224 px ResNet-50 (random init, ``freeze=none``) at batch 32.
"""

from __future__ import annotations

import argparse
import os
import time

import lightning as L
from common import QUIET, alternate, child, load_average, median, print_table

FIRST_STEP = "+callbacks.first_step._target_=startup.FirstStepExit"


class FirstStepExit(L.Callback):
    """Prints the wall-clock time when the first training batch starts, then ends the process."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        """Report ``time.time()`` on stdout and exit at once (no teardown is measured)."""
        print(f"FIRST_STEP {time.time()}", flush=True)
        os._exit(0)


def to_first_step(out_dir: str) -> float:
    """Seconds from launching the default job to its first training batch."""
    start = time.time()
    _, _, stdout = child(["train.py", *QUIET, "data.cache_features=false", FIRST_STEP], out_dir)
    (line,) = [line for line in stdout.splitlines() if line.startswith("FIRST_STEP")]
    return float(line.split()[1]) - start


def main() -> None:
    """Print the start-up table and the memory table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="/tmp/visionlab_bench_startup")
    args = parser.parse_args()
    times = alternate({
        "imports": lambda: child(["-c", "import torch, lightning, timm"])[0],
        "cfg": lambda: child(["train.py", "--cfg", "job"])[0],
        "first_step": lambda: to_first_step(args.out),
    }, args.repeats)
    floor = median(times["imports"])
    print_table(f"start-up, median of {args.repeats}, {load_average()}", ["what", "seconds", "vs imports"], [
        ["import torch, lightning, timm", floor, "—"],
        ["python train.py --cfg job", median(times["cfg"]), "— (target < 1.0 s)"],
        ["default job: launch to first training step", median(times["first_step"]),
         f"+{median(times['first_step']) - floor:.2f} s (target <= +3 s)"],
    ])
    default = child(["train.py", *QUIET], args.out)
    resnet50 = child(["train.py", *QUIET, "backbone=resnet50", "backbone.pretrained=false",
                      "backbone.input_size=224", "freeze=none", "augment=flip_crop", "data.batch_size=32",
                      "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                      "trainer.limit_val_batches=1", "test_after_fit=false", "optimized_metric=null"],
                     args.out)
    print_table("peak resident memory", ["run", "peak RSS (MB)", "wall (s)"], [
        ["default job (whole run)", default[1], default[0]],
        ["resnet50 224px batch 32, 2 training steps", resnet50[1], resnet50[0]],
    ])
    print(f"summary: --cfg job {median(times['cfg']):.2f} s; first step {median(times['first_step']):.1f} s "
          f"= imports {floor:.1f} s + {median(times['first_step']) - floor:.1f} s; "
          f"peak RSS {default[1]:.0f} MB (default), {resnet50[1]:.0f} MB (resnet50 224px b32)")


if __name__ == "__main__":
    main()
