"""``visionlab predict CKPT INPUT``: a CSV of class predictions for an image or a folder of images."""

from __future__ import annotations

import argparse
import csv
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from visionlab.checkpoint_header import output_root, require
from visionlab.cli.checks import chosen_checkpoint, free_output, positive
from visionlab.cli.commands import command
from visionlab.data.tta import TTA_VIEWS
from visionlab.errors import UserError
from visionlab.image_files import find_images
from visionlab.project import conf_dir_if_any

if TYPE_CHECKING:
    from visionlab.modules.capabilities import Prediction


def write_csv(predictions: list[Prediction], out: Path) -> None:
    """One row per image: path, predicted class, its probability, then the top-k classes and probabilities."""
    k = len(predictions[0].classes)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        ranks = [f"{kind}_{rank}" for rank in range(1, k + 1) for kind in ("class", "probability")]
        writer.writerow(["path", "predicted", "probability", *ranks])
        for p in predictions:
            ranked = [value for pair in zip(p.classes, (f"{q:.6f}" for q in p.probabilities), strict=True)
                      for value in pair]
            writer.writerow([str(p.source), p.classes[0], f"{p.probabilities[0]:.6f}", *ranked])


def cmd_predict(checkpoint: Path, images: list[Path], skipped: list[Path], out: Path, top_k: int | None,
                batch_size: int, conf_dir: Path | None = None, tta: str = "none", averaged: bool = True
                ) -> list[Prediction]:
    """Predict ``images`` (as :func:`~visionlab.image_files.find_images` found them, with the files
    it ``skipped``) with the model's own ``predict``; write ``out``; print counts per class and
    skipped files. ``conf_dir`` is read only for a checkpoint written before they held their run's
    config."""
    from visionlab.inference.checkpoint import load

    model = load(checkpoint, averaged=averaged, conf_dir=conf_dir)
    predictions = model.predict(images, top_k, tta, batch_size, progress=True)
    write_csv(predictions, out)
    counts = Counter(p.classes[0] for p in predictions)
    print(f"{len(predictions)} image(s) predicted, written to {out}")
    for name in model.class_names:
        print(f"  {name:<20} {counts.get(name, 0):6d}")
    if skipped:
        print(f"skipped {len(skipped)} file(s) that are not images:")
        for path in skipped:
            print(f"  {path}")
    return predictions


def predict_arguments(parser: argparse.ArgumentParser) -> None:
    """The checkpoint, the images, where to write and how many classes per image."""
    parser.add_argument("checkpoint", type=Path, help="a classifier's checkpoint, or its run folder")
    parser.add_argument("input", type=Path, help="an image file or a folder (searched recursively)")
    parser.add_argument("--out", type=Path, default=None,
                        help="the CSV to write (default: <run>/predictions/<input name>.csv)")
    parser.add_argument("--force", action="store_true", help="replace the CSV if it exists")
    parser.add_argument("--top-k", type=int, default=None,
                        help="classes and probabilities per image (default: 3, or all of a model with fewer)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--tta", default="none", choices=tuple(TTA_VIEWS),
                        help="average the softmax over views of each image: flip (2), flip_crop (4)")
    parser.add_argument("--no-ema", action="store_true", help="the trained weights, not their EMA")


def check_predict(args: argparse.Namespace) -> argparse.Namespace:
    """A checkpoint (or run folder) that classifies, an existing input, positive sizes; the CSV's path
    decided (beside the run, or the copied checkpoint) and free."""
    checkpoint = chosen_checkpoint(args.checkpoint)
    require(checkpoint, ("classify",), "predict")
    images, skipped = find_images(args.input)
    positive(args.top_k, "--top-k")
    positive(args.batch_size, "--batch-size")
    out = args.out or output_root(checkpoint) / "predictions" / f"{args.input.resolve().stem or 'input'}.csv"
    if out.is_dir():
        raise UserError(f"--out {out} is a folder: give the path of the CSV to write")
    free_output(out, args.force)
    return argparse.Namespace(**(vars(args) | {"checkpoint": checkpoint, "out": out}), images=images,
                              skipped=skipped)


@command("predict", "predict the class of an image or of every image in a folder", predict_arguments,
         check_predict)
def run_predict(args: argparse.Namespace) -> None:
    """:func:`cmd_predict` on the checked arguments."""
    cmd_predict(args.checkpoint, args.images, args.skipped, args.out, args.top_k, args.batch_size,
                conf_dir_if_any(), args.tta, averaged=not args.no_ema)
