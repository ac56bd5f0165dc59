"""Benchmark: generator steps per second of ``model=gan`` vs a plain PyTorch loop.

    python bench/gan_overhead.py                 # dcgan_shapes' networks, 5 repetitions
    python bench/gan_overhead.py --repeats 9 --threads 0

Both sides train the same ``GANModule`` (dcgan_shapes' settings: 1 channel, 32 px, width 32,
latent 64, BCE, DiffAugment translation + cutout, a generator EMA, Adam 2e-4 with betas 0.5 /
0.999; seeded weights) on the same in-memory batches of 64. The visionlab side is a Lightning
``Trainer`` as a run configures it (manual optimization, its per-step logging, the fixed-noise
grid written every epoch, the progress bar of ``conf/callbacks/default.yaml``, a CSV logger);
the hand loop calls the module's own networks, augmentation and losses in the module's step: a
discriminator step on the real batch and on a detached generated one, a generator step on that
same batch through the updated D (whose parameters take no gradient then), the EMA update. The
ratio is taken over the epochs after the first (steady state), alternating, median over the
repetitions. Target >= 0.95.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time

import lightning as L
import torch
from common import alternate, load_average, median, print_table
from lightning.pytorch.loggers import CSVLogger
from overhead import SteadyStateTimer, default_progress_bar
from torch.utils.data import DataLoader, TensorDataset

from visionlab.modules.gan import GANModule

SETTINGS = dict(image_size=32, channels=1, width=32, latent_dim=64, loss="bce",
                diffaugment=["translation", "cutout"], ema_decay=0.999, num_samples=64)


def make_module() -> GANModule:
    """The GAN both sides train, from the same seed."""
    torch.manual_seed(0)
    adam = functools.partial(torch.optim.Adam, betas=(0.5, 0.999))
    return GANModule(optimizer=adam, num_classes=8, **SETTINGS)


def hand_loop(loader: DataLoader, epochs: int) -> float:
    """The module's networks, augmentation and losses in a plain loop: steady-state seconds."""
    module = make_module()
    g_opt, d_opt = module.configure_optimizers()
    objective, latent = module.adversarial_loss, module.hparams.latent_dim
    module.train()
    steps = 0
    for epoch in range(epochs):
        if epoch == 1:
            start = time.perf_counter()
        for real, _ in loader:
            seen = module.discriminator_input(module.generator(torch.randn(len(real), latent), None))
            d_real = module.discriminator(module.discriminator_input(real), None)
            d_loss = objective.discriminator(d_real, module.discriminator(seen.detach(), None), 1.0)
            d_opt.zero_grad()
            d_loss.backward()
            d_opt.step()
            module.discriminator.requires_grad_(False)
            g_loss = objective.generator(module.discriminator(seen, None))
            g_opt.zero_grad()
            g_loss.backward()
            g_opt.step()
            module.discriminator.requires_grad_(True)
            steps += 1
            decay = min(module.hparams.ema_decay, (1 + steps) / (10 + steps))
            with torch.no_grad():
                for ema, current in zip(module.generator_ema.parameters(), module.generator.parameters(),
                                        strict=True):
                    ema.lerp_(current, 1.0 - decay)
    return time.perf_counter() - start


def visionlab_run(loader: DataLoader, epochs: int, log_dir: str) -> float:
    """The same epochs through a Trainer configured as a run configures it: steady-state seconds."""
    timer = SteadyStateTimer()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=epochs, logger=CSVLogger(log_dir),
                        enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=0, callbacks=[default_progress_bar(), timer],
                        default_root_dir=log_dir)
    trainer.fit(make_module(), train_dataloaders=loader)
    return timer.seconds


def main() -> None:
    """Print generator steps/s of both sides and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run; the first is not timed")
    parser.add_argument("--batches", type=int, default=32, help="batches of 64 per epoch")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    images = torch.rand(64 * args.batches, 1, 32, 32) * 2 - 1
    loader = DataLoader(TensorDataset(images, torch.zeros(len(images), dtype=torch.long)), batch_size=64,
                        shuffle=True)
    with tempfile.TemporaryDirectory() as log_dir:
        times = alternate({"hand": functools.partial(hand_loop, loader, args.epochs),
                           "visionlab": functools.partial(visionlab_run, loader, args.epochs, log_dir)},
                          args.repeats)
    steps = args.batches * (args.epochs - 1)
    ratio = median([h / v for h, v in zip(times["hand"], times["visionlab"], strict=True)])
    rows = [["hand loop", steps / median(times["hand"])], ["model=gan", steps / median(times["visionlab"])]]
    print_table(f"generator steps/s after the first epoch, {args.repeats} alternating repetitions, "
                f"{load_average()}", ["side", "steps/s (median)"], rows)
    print(f"summary: model=gan runs at {ratio:.3f}x the hand loop's generator steps/s (target 0.95)")


if __name__ == "__main__":
    main()
