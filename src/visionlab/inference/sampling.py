"""Images drawn from a noise model (a module that serves ``draw``), written as an ImageFolder tree:
what ``visionlab sample --per-class`` writes and what ``visionlab cas`` trains a classifier on."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import save_image


def write_class_tree(images: torch.Tensor, labels: torch.Tensor, class_names: list[str],
                     folder: Path) -> None:
    """``images`` in [0, 1] as ``folder/<class>/<n>.png``, numbered within each class."""
    for index, name in enumerate(class_names):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for number, image in enumerate(images[labels == index]):
            save_image(image, folder / name / f"{number:04d}.png")


def write_generated_tree(model, per_class: int, seed: int, folder: Path) -> None:
    """``per_class`` images of every class of a conditional ``model`` (class ``i`` drawn with seed
    ``seed + i``) as an ImageFolder tree under ``folder``."""
    names = list(model.hparams.class_names)
    for index in range(len(names)):
        images = model.draw(per_class, index, seed + index)
        write_class_tree(images, torch.full((per_class,), index), names, folder)
