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


def confusion_figure(confusion: torch.Tensor, class_names: list[str], title: str):
    """A matplotlib figure of the confusion matrix: counts, rows true classes, columns predictions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = max(4.0, 0.5 * len(class_names) + 2)
    figure, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(confusion.numpy(), cmap="Blues")
    figure.colorbar(image, ax=ax, label="images")
    ticks = range(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    threshold = confusion.max().item() / 2
    for (row, column), count in zip(((r, c) for r in ticks for c in ticks), confusion.flatten().tolist(),
                                     strict=True):
        ax.text(column, row, str(count), ha="center", va="center", fontsize=8,
                color="white" if count > threshold else "black")
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
