"""Export a classifier (a module that serves ``export``) to ONNX or TorchScript, with its
preprocessing, and verify it.

The exported model takes a batch of preprocessed images ``(N, C, H, W)`` (the batch size is
dynamic) and returns class probabilities (or logits). ``preprocessing.json`` says how to
make that input from an image file, so a deployment needs neither visionlab nor the config.
After writing, the exported model is run on a batch of real images and its outputs are
compared with PyTorch's: the export is only reported as written when they agree.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import nn

from visionlab.data.pixels import DECODING
from visionlab.errors import UserError, first_line

FORMATS = {"onnx": "model.onnx", "torchscript": "model.pt"}  # the file each format writes
OUTPUTS = ("probabilities", "logits")
TOLERANCE = 1e-4  # max absolute difference of probabilities (or logits) from PyTorch's, float32


class ExportedClassifier(nn.Module):
    """The classifier as deployed: preprocessed images in, probabilities or logits out.

    Holds the module's ``export_network()`` only: plain modules, no Lightning state.
    """

    def __init__(self, classifier, output: str) -> None:
        super().__init__()
        if output not in OUTPUTS:
            raise UserError(f"--output {output} is not one of: {', '.join(OUTPUTS)}")
        self.network = classifier.export_network()
        self.probabilities = output == "probabilities"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, num_classes)`` probabilities (softmax) or logits."""
        logits = self.network(images)
        return logits.softmax(dim=-1) if self.probabilities else logits


def preprocessing(model, output: str) -> dict:
    """What a deployment must do to an image before the exported model sees it."""
    config = model.input_config
    return {
        "class_names": list(model.class_names),
        "input_size": [config.in_chans, config.input_size, config.input_size],
        "decoding": DECODING,
        "layout": "NCHW", "channel_order": "RGB" if config.in_chans == 3 else "gray",
        "resize": f"to {config.input_size}x{config.input_size} pixels (bilinear, antialiased), no crop",
        "scale": "pixel values / 255 -> [0, 1]",
        "mean": list(config.mean), "std": list(config.std),
        "normalize": "(x - mean) / std per channel",
        "output": output,
    }


def export(model, fmt: str, out_dir: Path, example: torch.Tensor, output: str = "probabilities",
           force: bool = False) -> Path:
    """Write the model in ``fmt`` and ``preprocessing.json`` to ``out_dir``; the model's path. Another
    format's export may share the folder; a file that would be overwritten (the same format's model,
    a ``preprocessing.json`` that says something else) is refused unless ``force``."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt} is not one of: {', '.join(FORMATS)}")
    path, description = out_dir / FORMATS[fmt], json.dumps(preprocessing(model, output), indent=2)
    described = out_dir / "preprocessing.json"
    if not force and (path.exists() or (described.is_file() and described.read_text() != description)):
        clash = path if path.exists() else described
        raise UserError(f"{clash} exists (an earlier export of another model or output): give another "
                        "--out, or --force to replace it")
    if fmt == "onnx":
        try:
            import onnx  # noqa: F401
            import onnxscript  # noqa: F401
        except ImportError as err:
            raise UserError("--format onnx needs the export extra: pip install 'visionlab[export]'") from err
    wrapped = ExportedClassifier(model.eval(), output).eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    described.write_text(description)
    with torch.no_grad():
        if fmt == "torchscript":
            with warnings.catch_warnings():  # TorchScript's deprecation note: it is what was asked for
                warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit")
                torch.jit.trace(wrapped, example).save(str(path))
            return path
        torch.onnx.export(wrapped, (example,), str(path), input_names=["images"], output_names=[output],
                          dynamic_shapes={"images": {0: torch.export.Dim("batch")}}, dynamo=True,
                          external_data=False, verbose=False)  # verbose=None prints 8 progress lines
    return path


def run_exported(path: Path, fmt: str, images: torch.Tensor) -> torch.Tensor:
    """The exported model's outputs for ``images`` (onnxruntime for ONNX)."""
    if fmt == "torchscript":
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit")
            return torch.jit.load(str(path))(images)
    try:
        import onnxruntime
    except ImportError as err:
        raise UserError("checking an ONNX export needs onnxruntime: pip install 'visionlab[export]'") from err
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"images": images.numpy()})[0])


def verify(model, path: Path, fmt: str, images: torch.Tensor, output: str = "probabilities") -> float:
    """The largest absolute difference between the exported model's and PyTorch's outputs on
    ``images``; a UserError when it exceeds :data:`TOLERANCE`."""
    with torch.no_grad():
        expected = ExportedClassifier(model.eval(), output)(images)
    try:
        got = run_exported(path, fmt, images)
    except UserError:
        raise
    except Exception as err:
        raise UserError(f"the exported {fmt} model does not run: {first_line(err)}") from err
    difference = float((got - expected).abs().max())
    if difference > TOLERANCE:
        raise UserError(f"the exported {fmt} model differs from PyTorch by {difference:.2e} (> {TOLERANCE}): "
                        f"do not use {path}")
    return difference
