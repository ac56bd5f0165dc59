"""Two-process CPU DDP run of a staged plan, for ``test_ddp_finetune.py``.

    python tests/ddp_script.py <out_dir>

Uses the trainer settings of ``conf/trainer/ddp_cpu.yaml`` (2 processes, gloo,
``ddp_find_unused_parameters_true``). The backbone is frozen in epoch 0 and unfrozen in
epoch 1; each rank writes ``rank<r>.pt`` with its initial, after-epoch-0 and final weights.
Lightning's launcher re-executes this script for the second rank, so it must be a script.
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from tiny import TensorDataModule, tiny_model

from visionlab.finetune.callback import FreezeScheduleCallback
from visionlab.finetune.plans import Staged

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


class Snapshot(L.Callback):
    """Keeps a copy of the weights at the end of epoch 0."""

    def __init__(self) -> None:
        self.after_epoch0: dict[str, torch.Tensor] = {}

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == 0:
            self.after_epoch0 = {k: v.clone() for k, v in pl_module.state_dict().items()}


def main(out: Path) -> None:
    """Train 2 epochs on 2 ranks; save each rank's weights."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        trainer_cfg = compose(config_name="train", overrides=["trainer=ddp_cpu"]).trainer
    plan = Staged({0: "head", 1: "all"})
    model = tiny_model(plan, lr=1e-2)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    snapshot = Snapshot()
    trainer: L.Trainer = instantiate(
        trainer_cfg, default_root_dir=str(out), max_epochs=2, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=[FreezeScheduleCallback(), snapshot],
    )
    trainer.fit(model, datamodule=TensorDataModule(n_train=64))
    torch.save({"initial": initial, "after_epoch0": snapshot.after_epoch0, "final": model.state_dict(),
                "parameters": [n for n, _ in model.named_parameters()], "world_size": trainer.world_size},
               out / f"rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
