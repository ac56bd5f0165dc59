"""Benchmark: training images/s of a visionlab run vs a hand-written PyTorch loop.

    python bench/overhead.py                 # lenet5 at 32 px (batch 16) and shapes_net at 64 px (batch 32)
    python bench/overhead.py --repeats 5

Both sides train the same ``ClassifierModule`` (same seeded weights, per-stage parameter
groups, Adam) on the same in-memory tensors through the same ``DataLoader``. The visionlab
side is a Lightning ``Trainer`` as a default run configures it (freeze callback, epoch
reseeding, rich progress bar, CSV logger, epoch-level metrics); the hand loop only does
forward, loss, backward, step. One epoch each, alternating, median ratio over the repetitions;
targets: >= 0.90 on the tiny model, >= 0.99 on shapes_net.

Measured (load ~1 on 2 CPUs, one torch thread, 3 repetitions): lenet5 0.77 (1477 vs 1962 img/s),
shapes_net 0.99. Before epoch-level logging from one confusion matrix (per-step ``self.log`` of
torchmetrics objects) lenet5 was at 0.59. What remains on lenet5 is Lightning's own per-step
work (hooks, closure) and the progress bar: about 0.93 without the bar in a profile.
"""

from __future__ import annotations

import argparse
import functools
import tempfile

import lightning as L
import torch
from common import alternate, load_average, median, print_table, timed
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from visionlab.callbacks.epoch_seed import EpochSeedCallback
from visionlab.finetune.callback import FreezeScheduleCallback
from visionlab.finetune.plans import FreezePlan
from visionlab.modules.classifier import ClassifierModule
from visionlab.nets.factory import create_backbone

CASES = [("lenet5", 32, 16, 1600), ("shapes_net", 64, 32, 320)]  # name, px, batch, images per epoch
CLASSES = 6


def make_model(name: str, size: int) -> ClassifierModule:
    """The network both sides train, from the same seed."""
    torch.manual_seed(0)
    backbone = create_backbone(name, source="custom", pretrained=False, input_size=size)
    return ClassifierModule(backbone, CLASSES, optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
                            freeze_plan=FreezePlan())


def hand_loop(loader: DataLoader, name: str, size: int) -> None:
    """One epoch of forward, cross-entropy, backward, Adam step."""
    model = make_model(name, size)
    optimizer = model.configure_optimizers()
    model.train()
    for x, y in loader:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def visionlab_run(loader: DataLoader, name: str, size: int, log_dir: str) -> None:
    """One epoch through the Trainer, with the callbacks and logger of a default run."""
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=CSVLogger(log_dir),
                        enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=0,
                        callbacks=[EpochSeedCallback(0), FreezeScheduleCallback(), RichProgressBar()])
    trainer.fit(make_model(name, size), train_dataloaders=loader)


def main() -> None:
    """Print images/s of both sides and their ratio for each case."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as log_dir:
        for name, size, batch, images in CASES:
            data = TensorDataset(torch.randn(images, 3, size, size),
                                 torch.randint(0, CLASSES, (images,)))
            loader = DataLoader(data, batch_size=batch, shuffle=True)
            hand = functools.partial(timed, functools.partial(hand_loop, loader, name, size))
            run = functools.partial(visionlab_run, loader, name, size, log_dir)
            lightning = functools.partial(timed, run)
            times = alternate({"hand": hand, "visionlab": lightning}, args.repeats)
            ratios = [h / v for h, v in zip(times["hand"], times["visionlab"], strict=True)]
            rows.append([f"{name} {size}px b{batch}", images / median(times["hand"]),
                         images / median(times["visionlab"]), median(ratios)])
    print_table(f"training images/s, {args.repeats} alternating repetitions, {load_average()}",
                ["model", "hand loop img/s", "visionlab img/s", "ratio"], rows)
    print("summary: " + ", ".join(f"{r[0].split()[0]} {r[3]:.2f}x" for r in rows) +
          " of the hand loop's images/s (targets 0.90 tiny, 0.99 shapes_net)")


if __name__ == "__main__":
    main()
