"""``visionlab shapes VARIANT --out DIR``: a synthetic shapes dataset written as an image folder."""

from __future__ import annotations

from pathlib import Path


def cmd_shapes(variant: str, out: Path) -> None:
    """Write a shapes dataset variant as an ImageFolder tree under ``out``."""
    from visionlab.data.shapes import generate, spec_for

    root = generate(spec_for(variant), out / variant)
    print(f"{variant} written to {root}")
