"""``visionlab export CKPT --format onnx|torchscript``: a deployable model, checked against PyTorch."""

from __future__ import annotations

from pathlib import Path

from visionlab.api import check_images, export
from visionlab.inference.checkpoint import load
from visionlab.inference.export import TOLERANCE


def cmd_export(checkpoint: Path, fmt: str, out: Path, output: str, conf_dir: Path | None = None,
               overrides: list[str] = (), averaged: bool = True, force: bool = False) -> float:
    """Export to ``out`` with :func:`visionlab.export`, verified on the run's test images (or, when its
    data is not at hand, on random ones); return the largest difference from PyTorch."""
    model = load(checkpoint, averaged=averaged, conf_dir=conf_dir)
    images, what = check_images(model, overrides, conf_dir)
    path, difference = export(model, fmt, out, output, force, images)
    print(f"{fmt} model written to {path} (input images (N, {', '.join(map(str, images.shape[1:]))}), "
          f"output {output}), preprocessing in {out / 'preprocessing.json'}")
    print(f"verified on {len(images)} {what}: max |exported - PyTorch| = {difference:.2e} "
          f"(tolerance {TOLERANCE:.0e})")
    return difference
