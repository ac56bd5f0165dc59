"""A deterministic synthetic image-classification dataset drawn with PIL.

Each image is one filled shape (circle, star, arrow, ...) of random colour, size,
position and rotation on a cluttered, noisy background. The dataset is written once as
an ImageFolder tree (``<root>/<variant>/{train,val,test}/<class>/NNNNN.png``) and reused;
it needs no network, so it is visionlab's offline default.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from rich.progress import Progress

from visionlab.errors import UserError

log = logging.getLogger(__name__)
Points = list[tuple[float, float]]


def _regular(n: int, inner: float | None = None) -> Points:
    """A regular n-gon (or a 2n-pointed star when ``inner`` is set) on the unit circle."""
    pts, k = [], 2 * n if inner else n
    for i in range(k):
        r = inner if inner and i % 2 else 1.0
        a = 2 * math.pi * i / k - math.pi / 2
        pts.append((r * math.cos(a), r * math.sin(a)))
    return pts


# Unit-size outlines (coordinates within [-1, 1]); circles and rings are drawn as ellipses.
_POLYGONS: dict[str, Points] = {
    "square": [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)],
    "triangle": _regular(3),
    "pentagon": _regular(5),
    "hexagon": _regular(6),
    "star": _regular(5, inner=0.42),
    "cross": [(-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3), (0.3, 0.3), (0.3, 1),
              (-0.3, 1), (-0.3, 0.3), (-1, 0.3), (-1, -0.3), (-0.3, -0.3)],
    "arrow": [(-1, -0.25), (0.2, -0.25), (0.2, -0.65), (1, 0), (0.2, 0.65), (0.2, 0.25), (-1, 0.25)],
    "diamond": [(0, -1), (0.6, 0), (0, 1), (-0.6, 0)],
    "chevron": [(-0.9, -0.8), (-0.3, -0.8), (0.5, 0), (-0.3, 0.8), (-0.9, 0.8), (-0.1, 0)],
    "lshape": [(-0.8, -1), (-0.2, -1), (-0.2, 0.4), (0.8, 0.4), (0.8, 1), (-0.8, 1)],
    "tshape": [(-1, -1), (1, -1), (1, -0.4), (0.3, -0.4), (0.3, 1), (-0.3, 1), (-0.3, -0.4), (-1, -0.4)],
    "heart": [(0.5 * 16 * math.sin(t) ** 3 / 16 * 1.9,
               -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)) / 17)
              for t in (2 * math.pi * i / 40 for i in range(40))],
}
SHAPE_CLASSES = ("circle", "ring", "crescent", *_POLYGONS)


@dataclass(frozen=True)
class ShapesSpec:
    """What to generate: classes, images per class per split, image size, seed, the
    background: ``textured`` (a noisy gradient with clutter: the classification tasks),
    ``plain`` (one flat colour) or ``mono`` (a light grey shape on a dark grey ground, like
    MNIST's strokes), and whether shapes are ``centred`` (large, near the middle) or placed
    anywhere. ``mono`` + ``centred`` is what a DCGAN learns to draw in CPU minutes."""

    classes: tuple[str, ...]
    train_per_class: int
    val_per_class: int
    test_per_class: int
    image_size: int = 64
    seed: int = 0
    background: str = "textured"
    centred: bool = False

    def to_json(self) -> str:
        """The spec as canonical JSON: written beside the data and compared on reuse (fields
        at their defaults are left out, so trees generated before they existed still match)."""
        fields = asdict(self)
        for name, default in (("background", "textured"), ("centred", False)):
            if fields[name] == default:
                del fields[name]
        return json.dumps(fields, sort_keys=True)

    def splits(self) -> dict[str, int]:
        """Images per class for each split, in generation order."""
        return {"train": self.train_per_class, "val": self.val_per_class, "test": self.test_per_class}


VARIANTS: dict[str, ShapesSpec] = {
    # A general 8-class task for quick experiments.
    "shapes": ShapesSpec(("circle", "square", "triangle", "star", "cross", "pentagon", "ring", "arrow"),
                         train_per_class=150, val_per_class=40, test_per_class=40),
    # The pretraining task for shapes_net: many images of 8 classes.
    "shapes_source": ShapesSpec(("circle", "square", "triangle", "star", "cross", "pentagon",
                                 "hexagon", "ring"),
                                train_per_class=500, val_per_class=60, test_per_class=60, seed=1),
    # The transfer task: 6 other classes, few images per class.
    "shapes_target": ShapesSpec(("arrow", "heart", "crescent", "diamond", "chevron", "tshape"),
                                train_per_class=30, val_per_class=30, test_per_class=30, seed=2),
    # For GANs: the 8 classes of "shapes" on plain backgrounds, many images (experiment=dcgan_shapes).
    "shapes_plain": ShapesSpec(("circle", "square", "triangle", "star", "cross", "pentagon", "ring", "arrow"),
                               train_per_class=500, val_per_class=40, test_per_class=40, seed=3,
                               background="plain"),
    # For the DCGAN preset: the same 8 classes as light grey shapes, centred, on dark grey.
    "shapes_mono": ShapesSpec(("circle", "square", "triangle", "star", "cross", "pentagon", "ring", "arrow"),
                              train_per_class=500, val_per_class=40, test_per_class=40, seed=4,
                              background="mono", centred=True),
}


def _random_colour(rng: random.Random, lo: int = 0, hi: int = 255) -> tuple[int, int, int]:
    return tuple(rng.randint(lo, hi) for _ in range(3))  # type: ignore[return-value]


def _noise(rng: random.Random, size: int, sigma: float) -> Image.Image:
    """Grey Gaussian noise around 128 drawn from ``rng`` (PIL's effect_noise is unseeded)."""
    gen = np.random.default_rng(rng.getrandbits(64))
    return Image.fromarray(gen.normal(128, sigma, (size, size)).clip(0, 255).astype(np.uint8), "L")


def _background(rng: random.Random, size: int) -> Image.Image:
    """A noisy two-tone gradient with a few random lines and blobs as clutter."""
    img = Image.new("RGB", (size, size), _random_colour(rng, 40, 220))
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(2, 5)):
        x0, y0 = rng.uniform(0, size), rng.uniform(0, size)
        x1, y1 = rng.uniform(0, size), rng.uniform(0, size)
        if rng.random() < 0.5:
            draw.line((x0, y0, x1, y1), fill=_random_colour(rng), width=rng.randint(1, 3))
        else:
            r = rng.uniform(2, size / 8)
            draw.ellipse((x0 - r, y0 - r, x0 + r, y0 + r), fill=_random_colour(rng))
    noise = _noise(rng, size, rng.uniform(10, 40)).convert("RGB")
    return Image.blend(img, noise, rng.uniform(0.1, 0.3))


def _draw_shape(draw: ImageDraw.ImageDraw, name: str, cx: float, cy: float, r: float,
                angle: float, colour: tuple[int, int, int], bg: tuple[int, int, int]) -> None:
    """Draw shape ``name`` of radius ``r`` centred at (cx, cy), rotated by ``angle``."""
    box = (cx - r, cy - r, cx + r, cy + r)
    if name == "circle":
        draw.ellipse(box, fill=colour)
    elif name == "ring":
        draw.ellipse(box, outline=colour, width=max(2, int(r * 0.3)))
    elif name == "crescent":
        draw.ellipse(box, fill=colour)
        dx, dy = 0.45 * r * math.cos(angle), 0.45 * r * math.sin(angle)
        inner = 0.85 * r
        draw.ellipse((cx + dx - inner, cy + dy - inner, cx + dx + inner, cy + dy + inner), fill=bg)
    else:
        cos, sin = math.cos(angle), math.sin(angle)
        pts = [(cx + r * (x * cos - y * sin), cy + r * (x * sin + y * cos)) for x, y in _POLYGONS[name]]
        draw.polygon(pts, fill=colour)


def _grey(rng: random.Random, lo: int, hi: int) -> tuple[int, int, int]:
    level = rng.randint(lo, hi)
    return level, level, level


def render_shape(name: str, rng: random.Random, size: int, background: str = "textured",
                 centred: bool = False) -> Image.Image:
    """One image of class ``name``: random colour, size, position, rotation; on a ``textured``
    background also clutter, noise and sometimes blur, on a ``plain`` or ``mono`` one none of
    those. ``centred`` shapes are larger (radius 30-45% of the image) and within 6% of the middle."""
    if background == "textured":
        img = _background(rng, size)
    else:
        ground = _grey(rng, 0, 60) if background == "mono" else _random_colour(rng, 40, 220)
        img = Image.new("RGB", (size, size), ground)
    if centred:
        r = rng.uniform(0.3, 0.45) * size
        cx, cy = (size / 2 + rng.uniform(-0.06, 0.06) * size for _ in range(2))
    else:
        r = rng.uniform(0.2, 0.42) * size
        cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
    colour = _grey(rng, 180, 255) if background == "mono" else _random_colour(rng)
    bg = img.getpixel((int(cx), int(cy)))
    _draw_shape(ImageDraw.Draw(img), name, cx, cy, r, rng.uniform(0, 2 * math.pi), colour, bg)
    if background == "textured" and rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    return img


def generate(spec: ShapesSpec, root: Path, show_progress: bool = True) -> Path:
    """Write ``spec`` as an ImageFolder tree under ``root`` unless an identical one exists.

    The tree is written to a temporary sibling and renamed into place, so an interrupted
    run never leaves a half-written dataset that later runs would trust.
    """
    root = Path(root)
    manifest = root / "spec.json"
    wanted = spec.to_json()
    if manifest.is_file() and manifest.read_text() == wanted:
        return root
    if root.exists():
        raise UserError(
            f"{root} exists but does not hold this shapes dataset (no matching spec.json); "
            "move it away or point paths.data_dir elsewhere"
        )
    log.info("generating %d-class shapes dataset under %s", len(spec.classes), root)
    tmp = root.with_name(f"{root.name}.tmp{os.getpid()}")
    total = sum(spec.splits().values()) * len(spec.classes)
    with Progress(transient=True, disable=not show_progress) as bar:
        task = bar.add_task(f"generating {root.name}", total=total)
        for split_index, (split, per_class) in enumerate(spec.splits().items()):
            for class_index, name in enumerate(spec.classes):
                out = tmp / split / name
                out.mkdir(parents=True)
                for i in range(per_class):
                    rng = random.Random(f"{spec.seed}-{split_index}-{class_index}-{i}")
                    image = render_shape(name, rng, spec.image_size, spec.background, spec.centred)
                    image.save(out / f"{i:05d}.png")
                bar.advance(task, per_class)
    (tmp / "spec.json").write_text(wanted)
    try:
        tmp.rename(root)
    except OSError:  # another process (e.g. a DDP rank) finished first: keep its copy
        shutil.rmtree(tmp, ignore_errors=True)
        if not (manifest.is_file() and manifest.read_text() == wanted):
            raise
    return root


def spec_for(variant: str, classes: Sequence[str] | None = None, **overrides) -> ShapesSpec:
    """The spec of a named variant, with optional overrides (image size, counts, classes)."""
    if variant not in VARIANTS:
        raise UserError(f"data.variant='{variant}' is not one of: {', '.join(VARIANTS)}")
    base = asdict(VARIANTS[variant])
    if classes is not None:
        unknown = [c for c in classes if c not in SHAPE_CLASSES]
        if unknown:
            raise UserError(f"unknown shape class {unknown[0]!r}; valid: {', '.join(SHAPE_CLASSES)}")
        base["classes"] = tuple(classes)
    base.update({k: v for k, v in overrides.items() if v is not None})
    return ShapesSpec(**base)
