"""Write the best model's backbone as a safetensors file at the end of fit."""

from __future__ import annotations

import copy
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
        from visionlab.nets.weights import save_backbone_weights

        backbone = pl_module.backbone
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if best:
            state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
            backbone = copy.deepcopy(backbone).cpu()
            backbone.load_state_dict({k.removeprefix("backbone."): v for k, v in state.items()
                                      if k.startswith("backbone.")})
        out = save_backbone_weights(backbone, Path(trainer.default_root_dir) / self.filename)
        log.info("backbone weights (%s) written to %s", "best checkpoint" if best else "final", out)
