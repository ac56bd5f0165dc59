"""Tiny models, data and trainers shared by the fine-tuning tests and ``ddp_runs.py``."""

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

    def __init__(self, n_train: int = 16, n_val: int = 8, seed: int = 0, **kwargs) -> None:
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


def assert_trained_alike(trained: dict[str, torch.Tensor], reference: dict[str, torch.Tensor],
                         initial: dict[str, torch.Tensor], rel: float = 1e-2) -> None:
    """Two runs of one training through different kernels (NHWC vs NCHW, fused vs plain Adam,
    compiled vs eager) took the same steps.

    Comparing the trained weights element by element is the wrong test: the kernels sum in a
    different order on each CPU instruction set (``ATEN_CPU_CAPABILITY``) and CPU model, and later
    steps amplify the last bits (Adam turns the rounding of a near-zero gradient into a step of up
    to the learning rate; BatchNorm divides by small variances; a gradient that is a sum of terms
    that nearly cancel keeps few correct bits). What must agree is what training did:

    - a tensor training left alone (a frozen stage) is bit-identical to its start in both runs;
    - every other tensor moved in both, by amounts within a factor of 2 (a group not stepped or a
      wrong learning rate fails here);
    - over the whole model the runs differ by at most ``rel`` of how far training moved it
      (``||trained - reference|| <= rel * ||reference - initial||``). Measured on one Xeon under
      every ``ATEN_CPU_CAPABILITY`` with the tests' settings: 5e-4 at most.
    """
    moved_total = difference_total = 0.0
    for key, value in reference.items():
        other, start = trained[key], initial[key]
        if not value.is_floating_point():  # counters such as BatchNorm's num_batches_tracked
            assert torch.equal(other, value), key
            continue
        moved = float((value.double() - start.double()).norm())
        if moved == 0:
            assert torch.equal(other, start), f"{key}: left alone in one run, changed in the other"
            continue
        moved_other = float((other.double() - start.double()).norm())
        assert 0.5 < moved_other / moved < 2, f"{key}: moved {moved_other:.3g} vs {moved:.3g}"
        moved_total += moved**2
        difference_total += float((other.double() - value.double()).norm()) ** 2
    ratio = (difference_total / moved_total) ** 0.5
    assert ratio <= rel, f"the runs differ by {ratio:.1e} of the update (allowed {rel:.0e})"
