"""Log the learning rate each parameter group really trains with: zero while its stage is frozen."""

from __future__ import annotations

import lightning as L


class EffectiveLearningRates(L.Callback):
    """Logs ``lr-<Optimizer>/<group>`` at every training-epoch start, 0 for frozen groups.

    A module that names its optimizers (``optimizer_names``, e.g. the GAN's ``generator`` and
    ``discriminator``) gets ``lr-<name>/<group>`` instead of the optimizer's class name.

    Lightning's ``LearningRateMonitor`` shows a frozen stage's group at its full learning
    rate, which reads as if the stage trained. Every parameter stays in the optimizer (see
    ``visionlab.finetune.param_groups``), so the honest rate of a group whose parameters
    all have ``requires_grad=False`` is 0. Put it after the freeze callback, which sets
    ``requires_grad`` for the epoch.
    """

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Log every group's effective learning rate for the epoch that is starting."""
        names = getattr(pl_module, "optimizer_names", None)
        for number, optimizer in enumerate(trainer.optimizers):
            prefix = f"lr-{type(optimizer).__name__}" + (f"-{number}" if number else "")
            if names:
                prefix = f"lr-{names[number]}"
            for index, group in enumerate(optimizer.param_groups):
                trains = any(p.requires_grad for p in group["params"])
                name = group.get("name", f"group{index}")
                rate = group["lr"] if trains else 0.0
                pl_module.log(f"{prefix}/{name}", rate, on_step=False, on_epoch=True)
