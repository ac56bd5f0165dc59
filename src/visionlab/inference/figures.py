"""Figures of an evaluation: the confusion matrix and the top-losses grid."""

from __future__ import annotations

import torch
from PIL import Image

from visionlab.data_config import DataConfig
from visionlab.drawing import labelled_grid


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
