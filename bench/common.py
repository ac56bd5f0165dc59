"""Helpers every benchmark shares: A/B alternation, medians, tables, the machine's load.

The machines these run on are shared and noisy, so a figure is always a ratio against a
reference measured in the same run, the two alternating over several repetitions, and the
median is reported.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["callbacks.progress_bar=null", "trainer.enable_progress_bar=false"]


def load_average() -> str:
    """The 1-minute load average and the CPU count, for the table header."""
    one, _, _ = os.getloadavg()
    return f"load {one:.2f} on {os.cpu_count()} CPUs"


def alternate(measures: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Run every measurement once per repetition, in turn (A, B, A, B, ...); their values by name."""
    values: dict[str, list[float]] = {name: [] for name in measures}
    for _ in range(repeats):
        for name, measure in measures.items():
            values[name].append(measure())
    return values


def timed(function: Callable[[], object]) -> float:
    """Wall time of one call, in seconds."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def median(values: list[float]) -> float:
    """The median (the statistic every table reports)."""
    return statistics.median(values)


def print_table(title: str, header: list[str], rows: list[list[object]]) -> None:
    """A fixed-width table: the first column left-aligned, numbers right-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    print(f"\n{title}")
    for row in [[str(h) for h in header], *cells]:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths, strict=True))))


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def child(args: list[str], out_dir: str | None = None) -> tuple[float, float, str]:
    """Run ``python <args>`` from the project root: wall seconds, peak RSS in MB, stdout."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'bench'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    if out_dir:
        args = [*args, f"paths.output_dir={out_dir}"]
    start = time.time()
    process = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"python {' '.join(args)} failed")
    return time.time() - start, usage.ru_maxrss / 1024, stdout


def training_step(name: str, source: str, plan, size: int, batch: int,
                  classes: int = 10) -> Callable[[], None]:
    """One training step (forward, cross-entropy, backward, Adam) of backbone ``name`` with a new
    head under freeze ``plan`` (its epoch-0 state) on a fixed random batch; warmed up once."""
    import functools

    import torch

    from visionlab.finetune.callback import apply_plan
    from visionlab.modules.classifier import ClassifierModule
    from visionlab.nets.factory import create_backbone

    torch.manual_seed(0)
    backbone = create_backbone(name, source=source, pretrained=False, input_size=size)
    model = ClassifierModule(backbone, classes, optimizer=functools.partial(torch.optim.Adam, lr=1e-4),
                             freeze_plan=plan)
    model.train()
    apply_plan(model.backbone, model.freeze_plan, epoch=0)
    optimizer = model.configure_optimizers()
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, classes, (batch,))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # warm-up: allocations, optimizer state
    return step
