"""Benchmark: epochs on cached backbone features vs end-to-end epochs on the same data.

    python bench/feature_cache.py                      # shapes_net at 64 px on shapes_target
    python bench/feature_cache.py --backbone resnet18 --source timm --input-size 128

Both runs train the head of a frozen backbone (``freeze=feature_extraction``, no
augmentation) on the same images. An epoch is timed from its start to its end, validation
included; the first epoch of every run is left out (warm-up), and the one-off feature
extraction of the cached run is reported on its own line. Prints a table with the median
epoch time of each mode over ``--repeats`` runs, and their ratio.

Both modes run with ``--threads`` torch threads (default 1). On a CPU shared with other
jobs, multi-threaded torch spends milliseconds synchronising threads on every tiny op,
which swamps the cached epochs (the head's ops take microseconds) and makes timings
erratic; one thread was also the faster setting end to end there. Measured on 2 shared
cores (load ~3): shapes_net 64 px: 1.85 s vs 0.029 s per epoch, 64x (``--threads 0``,
i.e. 2 threads: 24-31x, cached epochs 0.04-0.5 s); resnet18 (timm, 128 px): 4.08 s vs
0.031 s, 133x.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from pathlib import Path

import lightning as L
import torch

from visionlab.data.shapes_datamodule import ShapesDataModule
from visionlab.finetune.callback import FreezeScheduleCallback
from visionlab.finetune.feature_cache import cache_features
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


def one_run(args: argparse.Namespace, cached: bool) -> tuple[list[float], float]:
    """Epoch times after the first, and the feature-extraction time (0 end to end)."""
    torch.manual_seed(0)
    backbone = create_backbone(args.backbone, source=args.source, pretrained=False,
                               input_size=args.input_size)
    data = ShapesDataModule(data_dir=args.data_dir, variant=args.variant, data_config=backbone.data_config,
                            batch_size=args.batch_size)
    data.setup("fit")
    plan = FeatureExtraction()
    adam = functools.partial(torch.optim.Adam, lr=1e-3)
    model = ClassifierModule(backbone, data.num_classes, optimizer=adam, freeze_plan=plan)
    extraction = 0.0
    if cached:
        data = cache_features(data, model, plan, Path(args.cache_dir), max_epochs=args.epochs)
        start = time.perf_counter()
        data.setup("fit")
        extraction = time.perf_counter() - start
    timer = EpochTimer()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=args.epochs, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, callbacks=[FreezeScheduleCallback(), timer])
    trainer.fit(model, datamodule=data)
    return timer.times[1:], extraction


def main() -> None:
    """Run both modes ``--repeats`` times and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="shapes_net")
    parser.add_argument("--source", default="custom")
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--variant", default="shapes_target")
    parser.add_argument("--data-dir", default="data/shapes")
    parser.add_argument("--cache-dir", default="outputs/bench_feature_cache")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    times: dict[bool, list[float]] = {False: [], True: []}
    extractions = []
    for _ in range(args.repeats):
        for cached in (False, True):
            epoch_times, extraction = one_run(args, cached)
            times[cached] += epoch_times
            if cached:
                extractions.append(extraction)
    end_to_end, cached = statistics.median(times[False]), statistics.median(times[True])
    print(f"\n{args.backbone} at {args.input_size}px on {args.variant}, batch {args.batch_size}, "
          f"{args.repeats} runs x {args.epochs - 1} timed epochs each, "
          f"{torch.get_num_threads()} torch threads")
    print(f"{'mode':<28}{'median epoch (s)':>18}{'min (s)':>10}{'max (s)':>10}")
    print(f"{'end to end':<28}{end_to_end:>18.4f}{min(times[False]):>10.4f}{max(times[False]):>10.4f}")
    print(f"{'cached features':<28}{cached:>18.4f}{min(times[True]):>10.4f}{max(times[True]):>10.4f}")
    print(f"{'one-off extraction':<28}{statistics.median(extractions):>18.4f}")
    print(f"speed-up of cached epochs: {end_to_end / cached:.0f}x")


if __name__ == "__main__":
    main()
