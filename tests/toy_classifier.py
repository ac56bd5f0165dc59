"""A classifier kind defined outside visionlab, as a user would write one: not derived from
``ClassifierModule``, a tiny CNN of its own. It declares what it serves (``classify``, ``export``) and
takes visionlab's ``Classifies`` mixin for ``predict``; ``visionlab.train.run``, ``visionlab eval /
predict / export`` and ``visionlab.load`` use it with no edit to visionlab."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from visionlab.data_config import DataConfig
from visionlab.modules.base import RunModule, register_kind
from visionlab.modules.capabilities import Classifies


@register_kind
class ToyClassifier(Classifies, RunModule):
    """One convolution, global average pooling and a linear layer, on images normalised to [-1, 1]."""

    kind = "toy_classifier"
    capabilities = frozenset({"classify", "export"})

    def __init__(self, class_names: list[str], width: int = 8, image_size: int = 32,
                 lr: float = 1e-2) -> None:
        super().__init__()
        self.save_hyperparameters({"class_names": list(class_names), "width": width, "image_size": image_size,
                                   "lr": lr}, logger=False)
        self.net = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                 nn.Flatten(), nn.Linear(width, len(class_names)))

    @classmethod
    def data_config(cls, cfg, backbone) -> DataConfig:
        """RGB at ``model.image_size``, scaled to [-1, 1]."""
        return DataConfig(3, cfg.model.image_size, (0.5,) * 3, (0.5,) * 3)

    @classmethod
    def from_run(cls, cfg, datamodule, backbone) -> ToyClassifier:
        """For the data's classes, at the config's width."""
        return cls(datamodule.class_names, cfg.model.width, cfg.model.image_size)

    @classmethod
    def from_checkpoint(cls, state: dict, checkpoint, run_config) -> ToyClassifier:
        """From the saved hyperparameters and weights."""
        model = cls(**state["hyper_parameters"])
        model.load_state_dict(state["state_dict"])
        return model

    @property
    def input_config(self) -> DataConfig:
        """The images it reads: RGB at ``image_size``, in [-1, 1]."""
        return DataConfig(3, self.hparams.image_size, (0.5,) * 3, (0.5,) * 3)

    def export_network(self) -> nn.Module:
        """The network itself."""
        return self.net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits."""
        return self.net(images)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        """Cross-entropy."""
        images, labels = batch
        loss = F.cross_entropy(self(images), labels)
        self.log("train/loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        """Accuracy and loss."""
        self._score(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        """Accuracy and loss."""
        self._score(batch, "test")

    def _score(self, batch, stage: str) -> None:
        images, labels = batch
        logits = self(images)
        self.log(f"{stage}/loss", F.cross_entropy(logits, labels))
        self.log(f"{stage}/acc", (logits.argmax(-1) == labels).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam at ``lr``."""
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
