"""Image files found on disk and checked readable with PIL alone: the front ends look at a user's
files before torch loads, and the data modules use the same test."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from visionlab.errors import UserError


def named_as_image(path: Path) -> bool:
    """True if ``path``'s extension is one of the image formats PIL knows (``.png``, ``.JPG``,
    ``.tif``...): what is not (``notes.txt``, ``Thumbs.db``, a labels ``.csv``) is no image of a
    dataset, whatever it holds."""
    return path.suffix.lower() in Image.registered_extensions()


def is_readable_image(path: Path) -> bool:
    """True if PIL can identify and verify ``path`` as an image."""
    try:
        with Image.open(path) as img:
            img.verify()
        return True
    except Exception:  # PIL raises many types for broken files
        return False


def find_images(source: Path) -> tuple[list[Path], list[Path]]:
    """(readable images, skipped files) of an image file or a folder searched recursively."""
    if not source.exists():
        raise UserError(f"{source} does not exist: give an image file or a folder of images")
    files = [source] if source.is_file() else sorted(
        p for p in source.rglob("*") if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if is_readable_image(p)]
    readable = set(images)
    skipped = [p for p in files if p not in readable]
    if not images:
        raise UserError(f"{source} holds no readable images ({len(files)} other file(s)): give an image "
                        "file or a folder with images in it")
    return images, skipped
