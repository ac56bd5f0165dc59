"""Write the best model's backbone as a safetensors file at the end of fit."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch

log = logging.getLogger(__name__)


class ExportBackbone(L.Callback):
    """Saves ``<run dir>/<filename>``: the backbone weights of the best checkpoint.

    This is the "train a model, then reuse it" path: the file loads with
    ``backbone.weights=<file>`` (or ships as ``shapes_net``'s pretrained weights). The
    best checkpoint (by the configured ``monitor``) is used when there is one, else the
    final weights.
    """

    def __init__(self, filename: str = "backbone.safetensors") -> None:
        self.filename = filename

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Export once, from the main process."""
        if not trainer.is_global_zero:
            return
        from visionlab.models.weights import save_backbone_weights

        state = {k: v.detach().clone() for k, v in pl_module.backbone.state_dict().items()}
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if best:
            checkpoint = torch.load(best, map_location="cpu", weights_only=True)
            prefix = "backbone."
            state = {k[len(prefix):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
        out = Path(trainer.default_root_dir) / self.filename
        backbone = pl_module.backbone
        original = {k: v.detach().clone() for k, v in backbone.state_dict().items()}
        backbone.load_state_dict(state)
        save_backbone_weights(backbone, out)
        backbone.load_state_dict(original)
        log.info("backbone weights (%s) written to %s", "best checkpoint" if best else "final", out)
