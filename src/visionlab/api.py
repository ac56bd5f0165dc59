"""visionlab in Python: a trained model loaded from its checkpoint, and the calls the CLI makes.

    import visionlab
    model = visionlab.load("outputs/2026-12-07/10-00-00")      # a run folder, or any .ckpt file
    model.predict(["cat.jpg", "dog.png"])                       # a classifier: classes, probabilities
    visionlab.evaluate(model).accuracy                          # on its run's test set
    visionlab.export(model, "onnx", "deploy/")                  # ONNX or TorchScript, verified
    visionlab.load("outputs/.../best.ckpt").draw(16, seed=0)    # a GAN: images in [0, 1]

What a module serves (``model.capabilities``: classify, export, draw, restore) is declared by its
kind; a call it does not serve is one line naming what it does serve.
"""

from __future__ import annotations

from pathlib import Path

import torch

from visionlab.errors import UserError
from visionlab.inference.checkpoint import evaluation_data, load
from visionlab.inference.evaluate import Evaluation
from visionlab.inference.evaluate import evaluate as evaluate_on
from visionlab.inference.export import export as export_to
from visionlab.inference.export import verify
from visionlab.modules.base import RunModule

__all__ = ["load", "evaluate", "export"]

CHECK_IMAGES = 8  # images an export is verified on


def require_capability(model: RunModule, capability: str, call: str) -> None:
    """A UserError when ``model`` does not serve ``capability`` (what ``call`` needs)."""
    if capability not in model.capabilities:
        serves = ", ".join(sorted(model.capabilities)) or "nothing but training"
        raise UserError(f"{call} needs a model that can {capability}; this {model.kind} serves: {serves}")


def evaluate(model: RunModule, overrides: list[str] = (), tta: str = "none", conf_dir: Path | None = None,
             description: str = "evaluating", data=None) -> Evaluation:
    """A classifier's metrics on its run's test set (``overrides`` change the data, e.g.
    ``["data.root=photos"]``; picking a group option, ``data=image_folder``, needs ``conf_dir``), or
    on ``data`` (a set-up datamodule) when given."""
    require_capability(model, "classify", "visionlab.evaluate")
    data = data if data is not None else evaluation_data(model, overrides, conf_dir)
    return evaluate_on(model, data.test_dataloader(), model.class_names, description, tta=tta)


def check_images(model: RunModule, overrides: list[str] = (), conf_dir: Path | None = None
                 ) -> tuple[torch.Tensor, str]:
    """A few preprocessed images to verify an export on, and what they are: the run's test images
    when its data is at hand, else seeded random images of the model's input size."""
    try:
        data = evaluation_data(model, overrides, conf_dir)
    except UserError as err:
        config = model.input_config
        shape = (CHECK_IMAGES, config.in_chans, config.input_size, config.input_size)
        return torch.randn(shape, generator=torch.Generator().manual_seed(0)), f"random images ({err})"
    dataset = data.test_set if data.test_set is not None else data.val_set
    return torch.stack([dataset[i][0] for i in range(min(CHECK_IMAGES, len(dataset)))]), "test images"


def export(model: RunModule, fmt: str, out: str | Path, output: str = "probabilities", force: bool = False,
           images: torch.Tensor | None = None) -> tuple[Path, float]:
    """Write ``model`` as ``fmt`` (``onnx`` or ``torchscript``) with ``preprocessing.json`` into ``out``,
    verified against PyTorch on ``images`` (preprocessed; default :func:`check_images`); the
    model file and the largest difference from PyTorch."""
    require_capability(model, "export", "visionlab.export")
    if images is None:
        images, _ = check_images(model)
    path = export_to(model, fmt, Path(out), images, output, force)
    return path, verify(model, path, fmt, images, output)
