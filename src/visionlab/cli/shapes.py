"""``visionlab shapes VARIANT --out DIR``: a synthetic shapes dataset written as an image folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from visionlab.cli.commands import command

VARIANTS = ("shapes", "shapes_source", "shapes_target", "shapes_plain", "shapes_mono")


def cmd_shapes(variant: str, out: Path) -> None:
    """Write a shapes dataset variant as an ImageFolder tree under ``out``."""
    from visionlab.data.shapes import generate, spec_for

    root = generate(spec_for(variant), out / variant)
    print(f"{variant} written to {root}")


def shapes_arguments(parser: argparse.ArgumentParser) -> None:
    """The variant and the parent folder."""
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("--out", type=Path, default=Path("data/shapes"), help="parent folder")


@command("shapes", "write a synthetic shapes dataset to a folder", shapes_arguments)
def run_shapes(args: argparse.Namespace) -> None:
    """:func:`cmd_shapes` on the parsed arguments."""
    cmd_shapes(args.variant, args.out)
