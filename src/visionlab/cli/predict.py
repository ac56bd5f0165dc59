"""``visionlab predict CKPT INPUT``: a CSV of class predictions for an image or a folder of images."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from visionlab.inference.checkpoint import load
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
