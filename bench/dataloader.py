"""Benchmark: how fast the loader delivers images (decode + augment) vs how fast the model eats them.

    python bench/dataloader.py                        # workers 0, 1, 2
    python bench/dataloader.py --workers 0 1 2 4 --repeats 5

Two recipes on the embedded shapes_target images (PNG files, decoded every epoch):

- the default job: shapes_net at 64 px, no augmentation, frozen backbone (what the model
  consumes when features are not cached);
- a 224 px recipe: ResNet-18 (timm, random init) fine-tuned end to end with
  ``augment=flip_crop``, images resized to 224 px.

For every worker count the loader's images/s is timed over whole epochs (worker start-up
included, as a run pays it each epoch), alternating with the model's training images/s on
one in-memory batch. A loader faster than the model keeps the accelerator fed; on this
2-CPU machine the model shares the CPUs with the workers, so on a GPU machine the model side
is far faster and the worker count matters more.
"""

from __future__ import annotations

import argparse
import functools

import torch
from common import ROOT, alternate, load_average, median, print_table, timed, training_step

from visionlab.data.augment import flip_crop
from visionlab.data.shapes_datamodule import ShapesDataModule
from visionlab.finetune.plans import FeatureExtraction, FreezePlan
from visionlab.nets.factory import create_backbone

RECIPES = {
    "default job (shapes_net 64px, frozen)": ("shapes_net", "custom", 64, None, FeatureExtraction()),
    "224px resnet18 + flip_crop, all trained": ("resnet18", "timm", 224, flip_crop, FreezePlan()),
}


def loader_rate(data_dir: str, backbone, augment, workers: int, batch: int) -> float:
    """Training-loader images/s over one epoch with ``workers`` processes."""
    data = ShapesDataModule(data_dir=data_dir, variant="shapes_target", data_config=backbone.data_config,
                            augment=augment, batch_size=batch, num_workers=workers, seed=0)
    data.setup("fit")
    loader = data.train_dataloader()
    seconds = timed(lambda: sum(1 for _ in loader))
    return len(data.train_set) / seconds


def model_rate(step, batch: int, steps: int = 3) -> float:
    """Training images/s of one ``step`` function (forward, backward, optimizer) at ``batch``."""
    return batch * steps / timed(lambda: [step() for _ in range(steps)])


def main() -> None:
    """Print loader and model images/s per recipe and worker count."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", default=str(ROOT / "data" / "shapes"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for label, (name, source, size, augment, plan) in RECIPES.items():
        backbone = create_backbone(name, source=source, pretrained=False, input_size=size)
        step = training_step(name, source, plan, size, args.batch, classes=6)
        load = functools.partial(loader_rate, args.data_dir, backbone, augment, batch=args.batch)
        measures = {f"loader{w}": functools.partial(load, workers=w) for w in args.workers}
        measures["model"] = functools.partial(model_rate, step, args.batch)
        rates = alternate(measures, args.repeats)
        consumed = median(rates["model"])
        for w in args.workers:
            delivered = median(rates[f"loader{w}"])
            rows.append([label if w == args.workers[0] else "", w, delivered, consumed, delivered / consumed])
    print_table(f"images/s, median of {args.repeats}, one torch thread, {load_average()}",
                ["recipe", "workers", "loader img/s", "model img/s", "loader/model"], rows)
    per_recipe = [rows[i:i + len(args.workers)] for i in range(0, len(rows), len(args.workers))]
    print("summary: loader/model images/s " + "; ".join(
        f"{group[0][0].split(' (')[0]}: " + ", ".join(f"{r[1]} workers {r[4]:.1f}x" for r in group)
        for group in per_recipe))


if __name__ == "__main__":
    main()
