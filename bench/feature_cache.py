"""Benchmark: cached backbone features vs end-to-end training of a frozen backbone's head.

    python bench/feature_cache.py                      # shapes_net at 64 px on shapes_target
    python bench/feature_cache.py --backbone resnet18 --source timm --input-size 128

Every run trains the head of a frozen backbone (``freeze=feature_extraction``, no
augmentation) on the same images. Two tables:

- **epochs**: an epoch is timed from its start to its end, validation included; the first
  epoch of every run is left out (warm-up), and the one-off feature extraction of a cached
  run is reported on its own line. Median epoch time of each mode over ``--repeats`` runs.
- **sweep**: ``--sweep`` runs that differ only in the head's learning rate, as a sweep over
  head hyperparameters would, timed whole (extraction included): end to end; with a cache
  private to each run (every run extracts; what the cache did when it lived in the run
  directory); and with the shared cache under the data directory (the first run extracts,
  the others read the files back).
- **default job** (``--default-job``): the whole ``python train.py`` in a fresh process,
  import to exit, with ``data.cache_features=false`` (end to end), with ``auto`` and an empty
  cache directory (extraction included), and with ``auto`` reading the cache back.

Both modes run with ``--threads`` torch threads (default 1). On a CPU shared with other
jobs, multi-threaded torch spends milliseconds synchronising threads on every tiny op,
which swamps the cached epochs (the head's ops take microseconds) and makes timings
erratic; one thread was also the faster setting end to end there. Measured on 2 shared
cores (load ~3): shapes_net 64 px: 1.85 s vs 0.029 s per epoch, 64x (``--threads 0``,
i.e. 2 threads: 24-31x, cached epochs 0.04-0.5 s); resnet18 (timm, 128 px): 4.08 s vs
0.031 s, 133x. Sweep of 3 runs x 3 epochs (``--repeats 2 --sweep 3 --epochs 3``, load ~1):
end to end 41.4 s, cache per run 21.8 s (1.9x), shared cache 7.7 s (5.4x).
"""

from __future__ import annotations

import argparse
import functools
import shutil
import statistics
import time
from pathlib import Path

import lightning as L
import torch
from common import QUIET, ROOT, alternate, child, load_average, median, print_table

from visionlab.data.shapes_datamodule import ShapesDataModule
from visionlab.finetune.callback import FreezeScheduleCallback
from visionlab.finetune.feature_cache import wrap_with_feature_cache
from visionlab.finetune.plans import FeatureExtraction
from visionlab.modules.classifier import ClassifierModule
from visionlab.nets.factory import create_backbone


class EpochTimer(L.Callback):
    """Wall time of every training epoch (validation included)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.times.append(time.perf_counter() - self._start)


def one_run(args: argparse.Namespace, cache_dir: Path | None,
            lr: float = 1e-3) -> tuple[list[float], float, float]:
    """Epoch times after the first, the feature-extraction time (0 end to end), the whole run's time.

    ``cache_dir=None`` trains end to end; otherwise features are cached in ``cache_dir``.
    """
    start_run = time.perf_counter()
    torch.manual_seed(0)
    backbone = create_backbone(args.backbone, source=args.source, pretrained=False,
                               input_size=args.input_size)
    data = ShapesDataModule(data_dir=args.data_dir, variant=args.variant, data_config=backbone.data_config,
                            batch_size=args.batch_size)
    data.setup("fit")
    plan = FeatureExtraction()
    adam = functools.partial(torch.optim.Adam, lr=lr)
    model = ClassifierModule(backbone, data.num_classes, optimizer=adam, freeze_plan=plan)
    extraction = 0.0
    if cache_dir is not None:
        data = wrap_with_feature_cache(data, backbone, model.head.pool, model.freeze_plan, cache_dir,
                                       max_epochs=args.epochs)
        model.inputs_are_features = True
        start = time.perf_counter()
        data.setup("fit")
        extraction = time.perf_counter() - start
    timer = EpochTimer()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=args.epochs, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, callbacks=[FreezeScheduleCallback(), timer])
    trainer.fit(model, datamodule=data)
    return timer.times[1:], extraction, time.perf_counter() - start_run


def sweep_time(args: argparse.Namespace, mode: str, root: Path) -> float:
    """Wall time of ``--sweep`` runs over head learning rates in ``mode``: end_to_end | private | shared."""
    shutil.rmtree(root, ignore_errors=True)
    total = 0.0
    for index in range(args.sweep):
        cache_dir = {"end_to_end": None, "private": root / f"run{index}", "shared": root / "shared"}[mode]
        total += one_run(args, cache_dir, lr=1e-3 * 2**index)[2]
    return total


def print_default_job_table(repeats: int, data_dir: str) -> None:
    """Wall time of the whole default job end to end, cached from scratch, and cached warm.

    The jobs use their own ``paths.data_dir`` (its feature cache is cleared between runs);
    a first, untimed run generates the shapes data there.
    """
    cache_dir = Path(data_dir) / "feature_cache"
    modes = {
        "end to end (cache_features=false)": (["data.cache_features=false"], False),
        "cached, extraction included": (["data.cache_features=auto"], True),
        "cached, read back (warm)": (["data.cache_features=auto"], False),
    }

    def job(overrides: list[str], clear: bool) -> float:
        if clear:
            shutil.rmtree(cache_dir, ignore_errors=True)
        return child(["train.py", *QUIET, f"paths.data_dir={data_dir}", *overrides],
                     "/tmp/visionlab_bench_default_job")[0]

    job(["data.cache_features=false"], False)  # generates the data
    times = alternate({label: functools.partial(job, *spec) for label, spec in modes.items()}, repeats)
    reference = median(times["end to end (cache_features=false)"])
    print_table(f"the whole default job (python train.py), median of {repeats}, {load_average()}",
                ["mode", "wall (s)", "vs end to end"],
                [[label, median(t), f"{reference / median(t):.1f}x"] for label, t in times.items()])


def print_epoch_table(args: argparse.Namespace) -> None:
    """Median epoch time end to end and on cached features, over ``--repeats`` runs."""
    times: dict[bool, list[float]] = {False: [], True: []}
    extractions = []
    root = Path(args.cache_dir)
    for _ in range(args.repeats):
        for cached in (False, True):
            shutil.rmtree(root, ignore_errors=True)
            epoch_times, extraction, _ = one_run(args, root / "epochs" if cached else None)
            times[cached] += epoch_times
            if cached:
                extractions.append(extraction)
    end_to_end, cached = statistics.median(times[False]), statistics.median(times[True])
    print(f"{'mode':<28}{'median epoch (s)':>18}{'min (s)':>10}{'max (s)':>10}")
    print(f"{'end to end':<28}{end_to_end:>18.4f}{min(times[False]):>10.4f}{max(times[False]):>10.4f}")
    print(f"{'cached features':<28}{cached:>18.4f}{min(times[True]):>10.4f}{max(times[True]):>10.4f}")
    print(f"{'one-off extraction':<28}{statistics.median(extractions):>18.4f}")
    print(f"speed-up of cached epochs: {end_to_end / cached:.0f}x\n")


def print_sweep_table(args: argparse.Namespace) -> None:
    """Median wall time of a whole sweep in each mode, over ``--repeats`` sweeps, relative to end to end."""
    modes = {"end_to_end": "end to end", "private": "cache per run", "shared": "shared cache (data_dir)"}
    totals: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(args.repeats):
        for mode in modes:  # interleaved, so load on a shared machine hits every mode alike
            totals[mode].append(sweep_time(args, mode, Path(args.cache_dir) / "sweep"))
    reference = statistics.median(totals["end_to_end"])
    print(f"sweep of {args.sweep} runs x {args.epochs} epochs (head LR 1e-3 x 2^i)")
    print(f"{'mode':<28}{'median sweep (s)':>18}{'min (s)':>10}{'max (s)':>10}{'vs end to end':>16}")
    for mode, label in modes.items():
        median = statistics.median(totals[mode])
        print(f"{label:<28}{median:>18.2f}{min(totals[mode]):>10.2f}{max(totals[mode]):>10.2f}"
              f"{reference / median:>15.1f}x")


def main() -> None:
    """Print the epoch table and the sweep table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="shapes_net")
    parser.add_argument("--source", default="custom")
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--variant", default="shapes_target")
    parser.add_argument("--data-dir", default=str(ROOT / "data" / "shapes"))
    parser.add_argument("--cache-dir", default=str(ROOT / "outputs" / "bench_feature_cache"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sweep", type=int, default=4, help="runs in the sweep table (0: skip it)")
    parser.add_argument("--default-job", type=int, default=0, metavar="REPEATS",
                        help="also time the whole default job this many times per mode (0: skip)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"\n{args.backbone} at {args.input_size}px on {args.variant}, batch {args.batch_size}, "
          f"{args.repeats} repetitions, {torch.get_num_threads()} torch threads\n")
    print_epoch_table(args)
    if args.sweep:
        print_sweep_table(args)
    if args.default_job:
        print_default_job_table(args.default_job, "/tmp/visionlab_bench_default_job/data")

if __name__ == "__main__":
    main()
