"""``visionlab export CKPT --format onnx|torchscript``: a deployable model, checked against PyTorch."""

from __future__ import annotations

from pathlib import Path

import torch

from visionlab.inference.checkpoint import load_classifier
from visionlab.inference.export import TOLERANCE, export, verify

CHECK_IMAGES = 8


def cmd_export(checkpoint: Path, fmt: str, out: Path | None, output: str, conf_dir: Path,
               overrides: list[str] = (), averaged: bool = True) -> float:
    """Export to ``out`` (default ``<run>/export/<format>``), verify on real test images, return the
    largest difference from PyTorch."""
    trained = load_classifier(checkpoint, conf_dir, overrides, averaged)
    data = trained.datamodule
    dataset = data.test_set if data.test_set is not None else data.val_set
    images = torch.stack([dataset[i][0] for i in range(min(CHECK_IMAGES, len(dataset)))])
    out = out or trained.run_dir / "export" / fmt
    path = export(trained.model, fmt, out, images, output)
    difference = verify(trained.model, path, fmt, images, output)
    print(f"{fmt} model written to {path} (input images (N, {', '.join(map(str, images.shape[1:]))}), "
          f"output {output}), preprocessing in {out / 'preprocessing.json'}")
    print(f"verified on {len(images)} test images: max |exported - PyTorch| = {difference:.2e} "
          f"(tolerance {TOLERANCE:.0e})")
    return difference
