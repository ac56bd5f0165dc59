"""Figures of an evaluation: the confusion matrix and the top-losses grid."""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator

import torch
from PIL import Image

from visionlab.data_config import DataConfig
from visionlab.drawing import labelled_grid

# Fonts with the scripts matplotlib's DejaVu Sans lacks (CJK, Arabic, Devanagari...), tried in this
# order after it when installed: class names are often in the user's language.
FALLBACK_FONTS = ("Noto Sans CJK JP", "Noto Sans CJK SC", "Noto Sans CJK KR", "Source Han Sans",
                  "WenQuanYi Zen Hei", "Droid Sans Fallback", "Microsoft YaHei", "SimHei", "Malgun Gothic",
                  "Apple SD Gothic Neo", "Arial Unicode MS", "Noto Sans Arabic", "Noto Sans Devanagari",
                  "Noto Sans Thai", "Noto Sans")
MISSING_GLYPH = re.compile(r"Glyph (\d+) .* missing from font")


@contextlib.contextmanager
def any_script_labels() -> Iterator[set[str]]:
    """Draw matplotlib text (figures made and saved inside) with DejaVu Sans, then the installed
    :data:`FALLBACK_FONTS` for characters it lacks. Yields the set of characters no installed font
    has, filled on leaving (they are drawn as boxes), in place of matplotlib's warning per character
    and drawing."""
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    families = ["DejaVu Sans", *(name for name in FALLBACK_FONTS if name in installed)]
    missing: set[str] = set()
    with plt.rc_context({"font.family": families}), warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("always", message=MISSING_GLYPH.pattern)  # every character, every drawing
        yield missing
    for warning in caught:
        glyph = MISSING_GLYPH.match(str(warning.message))
        if glyph:
            missing.add(chr(int(glyph.group(1))))
        else:  # recorded too (record=True takes every warning): not ours to silence
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


# Beyond these many classes a cell is too small for its count, a tick for its class name: the
# figure then shows the matrix alone, indexed, at a bounded size (eval.json has every count).
COUNTED_CLASSES = 30
NAMED_CLASSES = 60
LARGEST_FIGURE = 20.0  # inches


def confusion_figure(confusion: torch.Tensor, class_names: list[str], title: str):
    """A matplotlib figure of the confusion matrix: rows true classes, columns predictions, each
    cell's count written in it up to :data:`COUNTED_CLASSES` classes, class names on the axes up to
    :data:`NAMED_CLASSES` (beyond, class indices: a 150-class matrix with every count took 40 s
    to draw, and a 1000-class one would not fit in memory)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = len(class_names)
    size = min(LARGEST_FIGURE, max(4.0, 0.5 * count + 2))
    figure, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(confusion.numpy(), cmap="Blues")
    figure.colorbar(image, ax=ax, label="images")
    ticks = range(count)
    if count <= NAMED_CLASSES:
        ax.set_xticks(ticks, class_names, rotation=45, ha="right")
        ax.set_yticks(ticks, class_names)
        ax.set(xlabel="predicted", ylabel="true", title=title)
    else:
        ax.set(xlabel="predicted (class index, as in eval.json)", ylabel="true (class index)", title=title)
    if count <= COUNTED_CLASSES:
        threshold = confusion.max().item() / 2
        for (row, column), cell in zip(((r, c) for r in ticks for c in ticks), confusion.flatten().tolist(),
                                       strict=True):
            ax.text(column, row, str(cell), ha="center", va="center", fontsize=8,
                    color="white" if cell > threshold else "black")
    figure.tight_layout()
    return figure


def top_losses_grid(dataset, indices: list[int], evaluation, data_config: DataConfig) -> Image.Image:
    """The images at ``indices`` captioned ``true -> predicted (probability)``."""
    mean = torch.tensor(data_config.mean).view(-1, 1, 1)
    std = torch.tensor(data_config.std).view(-1, 1, 1)
    images = torch.stack([(dataset[i][0] * std + mean).clamp(0, 1) for i in indices])
    names = evaluation.class_names
    captions = [f"{names[evaluation.targets[i]]}>{names[evaluation.predictions[i]]} "
                f"{evaluation.probabilities[i]:.2f}" for i in indices]
    return labelled_grid(images, captions, nrow=4, min_size=144)
