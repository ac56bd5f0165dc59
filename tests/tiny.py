"""Tiny models, data and trainers shared by the fine-tuning tests and ``ddp_script.py``."""

from __future__ import annotations

import functools

import lightning as L
import torch
from torch.utils.data import TensorDataset
from torchvision.transforms import v2

from visionlab.callbacks.epoch_seed import EpochSeedCallback
from visionlab.data.datamodule import ClassificationDataModule
from visionlab.finetune.callback import FreezeScheduleCallback
from visionlab.finetune.plans import FreezePlan
from visionlab.modules.classifier import ClassifierModule
from visionlab.nets.custom import shapes_net

SIZE = 32
CLASSES = 3
STAGES = ["block1", "block2", "block3", "block4"]


def invert(image_size: int) -> list:
    """An 'augmentation' that visibly changes every image: inversion (``x -> -x`` once normalised)."""
    return [v2.RandomInvert(p=1.0)]


class TensorDataModule(ClassificationDataModule):
    """Random 32x32 images whose mean brightness depends on the class (so learning moves)."""

    def __init__(self, n_train: int = 32, n_val: int = 16, seed: int = 0, **kwargs) -> None:
        kwargs.setdefault("batch_size", 8)
        super().__init__(data_config=shapes_net(input_size=SIZE).data_config, **kwargs)
        self.n_train, self.n_val, self.seed = n_train, n_val, seed

    def _build(self, train_tf, eval_tf):
        g = torch.Generator().manual_seed(self.seed)

        def split(n: int) -> TensorDataset:
            y = torch.arange(n) % CLASSES
            x = torch.randn(n, 3, SIZE, SIZE, generator=g) + y.view(-1, 1, 1, 1) * 0.5
            return TensorDataset(x, y)

        return split(self.n_train), split(self.n_val), split(self.n_val), [f"c{i}" for i in range(CLASSES)]


def tiny_model(plan: FreezePlan | None = None, lr: float = 1e-2, scheduler=None,
               interval: str = "epoch", monitor: str = "val/acc", seed: int = 0) -> ClassifierModule:
    """shapes_net at 32 px with a linear head, Adam at ``lr``, seeded initial weights."""
    torch.manual_seed(seed)
    return ClassifierModule(
        backbone=shapes_net(input_size=SIZE), num_classes=CLASSES,
        optimizer=functools.partial(torch.optim.Adam, lr=lr), scheduler=scheduler,
        scheduler_interval=interval, scheduler_monitor=monitor, freeze_plan=plan,
    )


def tiny_trainer(root, max_epochs: int, *callbacks, **kwargs) -> L.Trainer:
    """A quiet CPU trainer with the freeze callback (it applies the module's plan) and reseeding."""
    options = dict(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                   enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0,
                   deterministic=True, default_root_dir=str(root))
    options.update(kwargs)
    return L.Trainer(max_epochs=max_epochs,
                     callbacks=[EpochSeedCallback(0), FreezeScheduleCallback(), *callbacks], **options)


class Recorder(L.Callback):
    """Records, at every epoch start (after the freeze callback), trainable names and group LRs."""

    def __init__(self) -> None:
        self.trainable: dict[int, list[str]] = {}
        self.lrs: dict[int, dict[str, float]] = {}

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        self.trainable[epoch] = [n for n, p in pl_module.backbone.body.named_parameters() if p.requires_grad]
        self.lrs[epoch] = {g["name"]: g["lr"] for g in trainer.optimizers[0].param_groups}
