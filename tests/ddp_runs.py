"""Two-process CPU DDP runs of a staged plan and of a GAN, one after the other in the same
two processes (``test_ddp.py`` forks them from the test process, one per rank, with torchrun's
environment: one process group serves every model).

``train`` takes the trainer settings of ``conf/trainer/ddp_cpu.yaml`` (2 processes, gloo,
``ddp_find_unused_parameters_true``). ``classifier``: the backbone is frozen in epoch 0 and
unfrozen in epoch 1; each rank writes ``rank<r>.pt`` with its initial, after-epoch-0 and
final weights. ``gan``: a conditional GAN with an EMA generator and a staged backbone
discriminator (manual optimization, two optimizers) trains 2 epochs; each rank writes
``gan_rank<r>.pt``; ``projected_gan`` the same with the projected discriminator
(``projected_gan_rank<r>.pt``).
"""

from __future__ import annotations

import functools
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from tiny import CLASSES, SIZE, TensorDataModule, tiny_model

from visionlab.finetune.callback import FreezeScheduleCallback
from visionlab.finetune.plans import Staged
from visionlab.modules.gan import GANModule
from visionlab.nets.custom import shapes_net

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


class Snapshot(L.Callback):
    """Keeps a copy of the weights at the end of epoch 0."""

    def __init__(self) -> None:
        self.after_epoch0: dict[str, torch.Tensor] = {}

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == 0:
            self.after_epoch0 = {k: v.clone() for k, v in pl_module.state_dict().items()}


def ddp_trainer(out: Path, *callbacks: L.Callback) -> L.Trainer:
    """A quiet 2-epoch trainer with ``conf/trainer/ddp_cpu.yaml``'s settings."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        trainer_cfg = compose(config_name="train", overrides=["trainer=ddp_cpu"]).trainer
    return instantiate(
        trainer_cfg, default_root_dir=str(out), max_epochs=2, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=[FreezeScheduleCallback(), *callbacks],
    )


def train_classifier(out: Path) -> None:
    """Train a staged classifier 2 epochs on 2 ranks; save each rank's weights."""
    model = tiny_model(Staged({0: "head", 1: "all"}), lr=1e-2)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    snapshot = Snapshot()
    trainer = ddp_trainer(out, snapshot)
    trainer.fit(model, datamodule=TensorDataModule(n_train=64))
    torch.save({"initial": initial, "after_epoch0": snapshot.after_epoch0, "final": model.state_dict(),
                "parameters": [n for n, _ in model.named_parameters()], "world_size": trainer.world_size},
               out / f"rank{trainer.global_rank}.pt")


def train_gan(out: Path, discriminator: str = "backbone", name: str = "gan") -> None:
    """Train a conditional GAN with a ``backbone`` (pooled) or ``projected`` discriminator 2 epochs on
    2 ranks; save each rank's weights to ``<name>_rank<r>.pt``."""
    torch.manual_seed(0)
    gan = GANModule(optimizer=functools.partial(torch.optim.Adam, betas=(0.5, 0.999)), width=8, latent_dim=16,
                    num_classes=CLASSES, conditional=True, ema_decay=0.9, discriminator=discriminator,
                    backbone=shapes_net(input_size=SIZE), freeze_plan=Staged({0: "head", 1: 1}))
    initial = {k: v.clone() for k, v in gan.state_dict().items()}
    trainer = ddp_trainer(out)
    trainer.fit(gan, datamodule=TensorDataModule(n_train=64))
    torch.save({"initial": initial, "final": gan.state_dict(), "world_size": trainer.world_size,
                "parameters": [n for n, _ in gan.named_parameters()]},
               out / f"{name}_rank{trainer.global_rank}.pt")


def train(out: Path, runs: list[str]) -> None:
    """Train the named models, one after the other, in this rank."""
    projected = functools.partial(train_gan, discriminator="projected", name="projected_gan")
    for run in runs:
        {"classifier": train_classifier, "gan": train_gan, "projected_gan": projected}[run](out)
