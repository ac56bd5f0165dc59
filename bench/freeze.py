"""Benchmark: a training step with a frozen backbone vs the same step with everything training.

    python bench/freeze.py                  # resnet18, mobilenetv3, vgg16 at 64 px, batch 16
    python bench/freeze.py --size 96 --repeats 7

``freeze=feature_extraction`` sets the backbone's ``requires_grad`` to false and its
BatchNorm to eval mode (``visionlab.finetune.callback.apply_plan``), so autograd records
nothing in it: the step is the backbone's forward pass plus the head's forward and
backward. ``freeze=none`` adds the backbone's backward pass and its optimizer update. Steps
alternate between the two, median of ``--repeats`` x ``--steps`` steps; the target ratio is
<= 0.35 (the forward pass is about a third of a full step).

Measured (load ~1 on 2 CPUs, one torch thread, 64 px, batch 16): see the README's Speed section.
"""

from __future__ import annotations

import argparse
import functools

import torch
from common import alternate, load_average, median, print_table, timed, training_step

from visionlab.finetune.plans import FeatureExtraction, FreezePlan

BACKBONES = [("resnet18", "timm"), ("mobilenetv3_large_100", "timm"), ("vgg16", "timm")]


def main() -> None:
    """Print the step times and their ratio for each backbone."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3, help="steps per timing")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for name, source in BACKBONES:
        steps = {label: training_step(name, source, plan, args.size, args.batch)
                 for label, plan in (("frozen", FeatureExtraction()), ("full", FreezePlan()))}

        def run(step):
            return timed(lambda: [step() for _ in range(args.steps)]) / args.steps

        measures = {label: functools.partial(run, step) for label, step in steps.items()}
        times = alternate(measures, args.repeats)
        ratios = [f / n for f, n in zip(times["frozen"], times["full"], strict=True)]
        rows.append([name, 1000 * median(times["full"]), 1000 * median(times["frozen"]), median(ratios)])
    header = ["backbone", "freeze=none (ms)", "feature_extraction (ms)", "ratio"]
    print_table(f"step time at {args.size}px, batch {args.batch}, {args.repeats}x{args.steps} steps, "
                f"{load_average()}", header, rows)
    ratios_text = ", ".join(f"{r[0]} {r[3]:.2f}" for r in rows)
    print(f"summary: frozen/full step time {ratios_text} (target <= 0.35)")


if __name__ == "__main__":
    main()
