"""``visionlab predict CKPT INPUT``: a CSV of class predictions for an image or a folder of images."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from visionlab.inference.checkpoint import rebuild_classifier
from visionlab.inference.predict import Prediction, predict


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
            writer.writerow([str(p.path), p.classes[0], f"{p.probabilities[0]:.6f}", *ranked])


def cmd_predict(checkpoint: Path, images: list[Path], skipped: list[Path], out: Path, top_k: int | None,
                batch_size: int, conf_dir: Path, tta: str = "none", averaged: bool = True
                ) -> list[Prediction]:
    """Predict ``images`` (as :func:`~visionlab.image_files.find_images` found them, with the files
    it ``skipped``); write ``out``; print counts per class and skipped files."""
    trained = rebuild_classifier(checkpoint, conf_dir, averaged=averaged)
    predictions = predict(trained.model, images, trained.class_names, top_k, batch_size, tta)
    write_csv(predictions, out)
    counts = Counter(p.classes[0] for p in predictions)
    print(f"{len(predictions)} image(s) predicted, written to {out}")
    for name in trained.class_names:
        print(f"  {name:<20} {counts.get(name, 0):6d}")
    if skipped:
        print(f"skipped {len(skipped)} file(s) that are not images:")
        for path in skipped:
            print(f"  {path}")
    return predictions
