"""Class probabilities for a user's image files, with a model rebuilt from its checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from rich.progress import Progress
from torch.utils.data import DataLoader

from visionlab.data.image_folder import ImageFileDataset
from visionlab.data.transforms import eval_transform
from visionlab.errors import UserError
from visionlab.inference.tta import averaged_log_probabilities, tta_views

DEFAULT_TOP_K = 3  # classes per image when not asked: fewer if the model has fewer


@dataclass
class Prediction:
    """One image's top-k classes and probabilities, most probable first."""

    path: Path
    classes: list[str]
    probabilities: list[float]


@torch.no_grad()
def predict(model, images: list[Path], class_names: list[str], top_k: int | None, batch_size: int,
            tta: str = "none") -> list[Prediction]:
    """Top-``top_k`` predictions for every image, batched, with a progress bar (``None``: the
    :data:`DEFAULT_TOP_K` most probable, or every class of a model with fewer); the softmax
    averaged over the ``tta`` views (:mod:`visionlab.inference.tta`)."""
    views = tta_views(tta)
    if top_k is None:
        top_k = min(DEFAULT_TOP_K, len(class_names))
    if not 1 <= top_k <= len(class_names):
        raise UserError(f"--top-k {top_k} must be between 1 and the model's {len(class_names)} classes")
    if batch_size < 1:
        raise UserError(f"--batch-size {batch_size} must be >= 1")
    dataset = ImageFileDataset([(path, 0) for path in images], eval_transform(model.backbone.data_config))
    loader = DataLoader(dataset, batch_size=batch_size)
    results: list[Prediction] = []
    model.eval()
    with Progress(transient=True) as bar:
        task = bar.add_task("predicting", total=len(images))
        for x, _ in loader:
            probabilities = averaged_log_probabilities(model, x.to(model.device), views).exp().cpu()
            top = probabilities.topk(top_k, dim=-1)
            for values, indices in zip(top.values.tolist(), top.indices.tolist(), strict=True):
                path = images[len(results)]
                results.append(Prediction(path, [class_names[i] for i in indices], values))
            bar.advance(task, len(x))
    return results
