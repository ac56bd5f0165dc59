"""``visionlab export CKPT --format onnx|torchscript``: a deployable model, checked against PyTorch."""

from __future__ import annotations

import argparse
from pathlib import Path

from visionlab.checkpoint_header import output_root, require
from visionlab.cli.checks import chosen_checkpoint
from visionlab.cli.commands import command
from visionlab.errors import UserError
from visionlab.project import conf_dir_if_any


def cmd_export(checkpoint: Path, fmt: str, out: Path, output: str, conf_dir: Path | None = None,
               overrides: list[str] = (), averaged: bool = True, force: bool = False) -> float:
    """Export to ``out`` with :func:`visionlab.export`, verified on the run's test images (or, when its
    data is not at hand, on random ones); return the largest difference from PyTorch."""
    from visionlab.api import check_images, export
    from visionlab.inference.checkpoint import load
    from visionlab.inference.export import TOLERANCE

    model = load(checkpoint, averaged=averaged, conf_dir=conf_dir)
    images, what = check_images(model, overrides, conf_dir)
    path, difference = export(model, fmt, out, output, force, images)
    print(f"{fmt} model written to {path} (input images (N, {', '.join(map(str, images.shape[1:]))}), "
          f"output {output}), preprocessing in {out / 'preprocessing.json'}")
    print(f"verified on {len(images)} {what}: max |exported - PyTorch| = {difference:.2e} "
          f"(tolerance {TOLERANCE:.0e})")
    return difference


def export_arguments(parser: argparse.ArgumentParser) -> None:
    """The checkpoint, the format, where to write and what the model outputs."""
    parser.add_argument("checkpoint", type=Path, help="a classifier's checkpoint, or its run folder")
    parser.add_argument("--format", default="onnx", choices=("onnx", "torchscript"))
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: <run>/export/<format>)")
    parser.add_argument("--force", action="store_true",
                        help="replace an earlier export of this format in --out")
    parser.add_argument("--no-ema", action="store_true", help="the trained weights, not their EMA")
    parser.add_argument("--output", default="probabilities", choices=("probabilities", "logits"))


def check_export(args: argparse.Namespace) -> argparse.Namespace:
    """A checkpoint (or run folder) that exports; ``--out`` a folder (another format's export may share
    it: the export refuses only to overwrite a file)."""
    checkpoint = chosen_checkpoint(args.checkpoint)
    require(checkpoint, ("export",), "export")
    out = args.out or output_root(checkpoint) / "export" / args.format
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file: give the folder to write the {args.format} model into")
    return argparse.Namespace(**(vars(args) | {"checkpoint": checkpoint, "out": out}))


@command("export", "export a classifier to ONNX or TorchScript, checked against PyTorch", export_arguments,
         check_export)
def run_export(args: argparse.Namespace) -> None:
    """:func:`cmd_export` on the checked arguments."""
    cmd_export(args.checkpoint, args.format, args.out, args.output, conf_dir_if_any(),
               averaged=not args.no_ema, force=args.force)
