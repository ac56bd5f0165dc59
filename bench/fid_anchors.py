"""Benchmark: what a GAN preset's ``val/fid`` means, from real images with known defects.

    python bench/fid_anchors.py                              # dcgan_shapes' data and metric
    python bench/fid_anchors.py --experiment cgan_shapes --splits 5

The GAN's validation images (as the run loads them: the preset's data, size and channels, in
[-1, 1]) are the reference set; each row scores, through the run's own ``val/fid`` code path
(:class:`~visionlab.metrics.generative.GenerativeMetrics` in ``model.fid_features``' space), as
many images as the reference holds, taken from the training split:

- real images, from ``--splits`` disjoint slices of the training split: the floor a perfect
  generator reaches, and its spread (the noise of FID at this sample count);
- the same real images blurred with a Gaussian of sigma 1 and 2 pixels;
- real images of only the first half (and quarter) of the classes: mode collapse.

Every row gives FID, KID, precision, recall, density and coverage as mean ± std over the
slices, and the sample counts. Then the per-class FID (``val/class_fid/<class>`` of a
conditional run) of the real slices: each class's validation images against the slice's images
of that class, the floor of that figure at a few dozen images per class.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from common import ROOT, print_table
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict
from torchvision.transforms.v2.functional import gaussian_blur

from visionlab.cas import stacked
from visionlab.metrics.generative import GenerativeMetrics, feature_network
from visionlab.modules.base import module_class

METRICS = ("fid", "kid", "precision", "recall", "density", "coverage")


def load_splits(experiment: str, data_dir: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                        torch.Tensor, list[str], str, DictConfig]:
    """Validation images and labels, training images and labels, class names (as the preset's run
    loads them), the preset's ``model.fid_features`` and its whole ``model`` config."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"experiment={experiment}"])
    with open_dict(cfg):
        cfg.paths.data_dir = data_dir
    data = instantiate(cfg.data, data_config=module_class(cfg.model).data_config(cfg, None), augment=None)
    data.prepare_data()
    data.setup("fit")

    val, val_labels = stacked(data.val_set)
    train, labels = stacked(data.train_set)
    return val, val_labels, train, labels, list(data.class_names), cfg.model.fid_features, cfg.model


def scores(metrics: GenerativeMetrics, images: torch.Tensor) -> dict[str, float]:
    """The metrics of ``images`` against the kept reference set."""
    metrics.reset()
    for batch in images.split(256):
        metrics.update(batch, real=False)
    return metrics.compute()


def main() -> None:
    """Score every anchor over the slices; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="dcgan_shapes")
    parser.add_argument("--splits", type=int, default=5, help="disjoint training slices per row")
    parser.add_argument("--data-dir", default=str(ROOT / "data"))
    args = parser.parse_args()
    val, val_labels, train, labels, classes, fid_features, _ = load_splits(args.experiment, args.data_dir)
    n = len(val)
    metrics = GenerativeMetrics(feature_network(fid_features), keep_real=True)
    for batch in val.split(256):
        metrics.update(batch, real=True)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))

    def slice_indices(keep: torch.Tensor) -> list[torch.Tensor]:
        chosen = order[keep[order]]
        return [chosen[i * n:(i + 1) * n] for i in range(min(args.splits, len(chosen) // n))]

    def slices(keep: torch.Tensor) -> list[torch.Tensor]:
        return [train[i] for i in slice_indices(keep)]

    everything = torch.ones(len(train), dtype=torch.bool)
    half, quarter = len(classes) // 2, max(1, len(classes) // 4)
    anchors = {
        "real training images": slices(everything),
        "blurred, sigma 1 px": [gaussian_blur(s, [7, 7], [1.0, 1.0]) for s in slices(everything)],
        "blurred, sigma 2 px": [gaussian_blur(s, [13, 13], [2.0, 2.0]) for s in slices(everything)],
        f"{half} of the {len(classes)} classes": slices(labels < half),
        f"{quarter} of the {len(classes)} classes": slices(labels < quarter),
    }
    rows = []
    for name, images in anchors.items():
        results = [scores(metrics, s) for s in images]
        row = [f"{name} (x{len(results)})"]
        for metric in METRICS:
            values = [r[metric] for r in results]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            row.append(f"{statistics.mean(values):.3g} ± {spread:.2g}")
        rows.append(row)
        print(f"{name}: fid {[round(r['fid'], 2) for r in results]}", flush=True)
    print_table(f"{args.experiment}: {n} reference (validation) images vs {n} images per row, "
                f"features {fid_features}", ["anchor", *METRICS], rows)
    per_class = []
    for indices in slice_indices(torch.ones(len(train), dtype=torch.bool)):
        scores(metrics, train[indices])
        per_class.append(metrics.class_fids(val_labels, labels[indices]))
    means = [statistics.mean(s.values()) for s in per_class]
    every = [value for s in per_class for value in s.values()]
    print(f"per-class FID of real images ({n // len(classes)} per class on each side, x{len(per_class)}): "
          f"mean over classes {statistics.mean(means):.3g} ± {statistics.stdev(means):.2g}, "
          f"range {min(every):.3g} to {max(every):.3g}")


if __name__ == "__main__":
    main()
