"""Benchmark for an accelerator: what only a GPU can show, in one run of under 5 minutes.

    python bench/device.py                     # on a GPU: resnet50 at 224 px, batch 64; both GAN presets
    python bench/device.py --json device.json
    python bench/device.py --tiny              # any machine: the same code at tiny sizes (the suite runs it)

Rows:

- the classifier's training images/s, ``channels_last`` and ``bf16-mixed``, eager and compiled
  (``model.compile``), through visionlab (a ClassifierModule fitted by a Lightning Trainer, as a
  run builds it) and through a plain PyTorch loop (the same network, head, optimizer, autocast and
  memory format; the same batches from the same in-memory data). Random weights and random images:
  the speed of a step does not depend on them, and nothing is downloaded;
- both GAN presets' generator steps/s, run as shipped (``experiment=dcgan_shapes``,
  ``experiment=gan_backbone_d_shapes``; FID off), ``channels_last`` and ``bf16-mixed`` on;
- each row's peak memory: the accelerator's peak allocation (CUDA), else the process's peak RSS.

Timing starts after ``--warmup`` steps (compilation and cuDNN's autotuning happen there) and
synchronises the device at both ends. On a CPU, ``--tiny`` runs shapes_net at 32 px, batch 8, a few
steps and the ``eager`` compile backend (Dynamo's tracing without code generation). It prints one
table and, with ``--json``, writes it.
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from common import QUIET, ROOT, print_table
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from torch.utils.data import DataLoader, TensorDataset

from visionlab.modules.classifier import ClassifierModule
from visionlab.modules.speed_options import compile_backend
from visionlab.nets.factory import create_backbone
from visionlab.nets.head import ClassifierHead
from visionlab.train import run

CLASSES = 10


class Sizes:
    """What one run measures: the full sizes on an accelerator, tiny ones anywhere (``--tiny``)."""

    def __init__(self, tiny: bool) -> None:
        self.backbone, self.image_size, self.batch = ("shapes_net", 32, 8) if tiny else ("resnet50", 224, 64)
        self.source = "custom" if tiny else "timm"
        self.warmup, self.steps = (2, 3) if tiny else (15, 50)
        self.gan_batches = 3 if tiny else None  # None: the presets' whole epochs
        self.compile = "eager" if tiny else True


def device() -> str:
    """``cuda`` when there is one, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def synchronize() -> None:
    """Wait for the device's queued work (timing must not stop while kernels still run)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def reset_peak() -> None:
    """Start a row's peak-memory count (CUDA; a process's peak RSS cannot be reset)."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mb() -> float:
    """The accelerator's peak allocation since :func:`reset_peak`, else this process's peak RSS."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class BatchTimer(L.Callback):
    """Seconds of the training batches after ``warmup`` of them, the device synchronised at both ends."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.batches, self.start, self.end = warmup, 0, None, None

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if self.batches == self.warmup:
            synchronize()
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.batches += 1
        synchronize()
        self.end = time.perf_counter()

    @property
    def timed(self) -> tuple[int, float]:
        """Batches timed and their seconds."""
        return self.batches - self.warmup, self.end - self.start


def images(sizes: Sizes) -> DataLoader:
    """Random images and labels in memory, enough for warm-up and the timed steps."""
    n = sizes.batch * (sizes.warmup + sizes.steps)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, sizes.image_size, sizes.image_size, generator=generator)
    return DataLoader(TensorDataset(x, torch.randint(0, CLASSES, (n,), generator=generator)),
                      batch_size=sizes.batch, pin_memory=torch.cuda.is_available())


def backbone(sizes: Sizes):
    """The classifier's backbone, random weights, at the measured input size."""
    torch.manual_seed(0)
    return create_backbone(sizes.backbone, sizes.source, pretrained=False, input_size=sizes.image_size)


def visionlab_classifier(sizes: Sizes, compile: bool | str, folder: Path) -> float:
    """Images/s of a ClassifierModule fitted by a Trainer (channels_last, bf16-mixed); every row is
    handed a scratch ``folder``, which this one does not need."""
    adam = functools.partial(torch.optim.Adam, lr=1e-3)
    model = ClassifierModule(backbone=backbone(sizes), num_classes=CLASSES, optimizer=adam,
                             channels_last=True, compile=compile)
    timer = BatchTimer(sizes.warmup)
    trainer = L.Trainer(accelerator=device(), devices=1, precision="bf16-mixed", max_epochs=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, num_sanity_val_steps=0, callbacks=[timer])
    trainer.fit(model, train_dataloaders=images(sizes))
    batches, seconds = timer.timed
    return batches * sizes.batch / seconds


def plain_classifier(sizes: Sizes, compile: bool | str, folder: Path) -> float:
    """Images/s of the same network and head in a plain PyTorch loop (channels_last, bf16 autocast)."""
    body = backbone(sizes)
    net = torch.nn.Sequential(body, ClassifierHead(int(body.num_features), CLASSES))
    net = net.to(device(), memory_format=torch.channels_last).train()
    backend = compile_backend(compile)
    step_net = net if backend is None else torch.compile(net, backend=backend)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for index, (x, y) in enumerate(images(sizes)):
        if index == sizes.warmup:
            synchronize()
            start = time.perf_counter()
        x = x.to(device(), non_blocking=True).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device(), dtype=torch.bfloat16):
            loss = F.cross_entropy(step_net(x), y.to(device(), non_blocking=True))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    synchronize()
    return sizes.steps * sizes.batch / (time.perf_counter() - start)


def gan_preset(sizes: Sizes, preset: str, folder: Path) -> float:
    """Generator steps/s of ``preset`` as shipped (FID off), channels_last and bf16-mixed, over its
    second epoch (:class:`~step_timer.StepTimer`: the first is warm-up)."""
    timing = folder / f"{preset}.json"
    accelerator = "gpu" if device() == "cuda" else "cpu"
    overrides = [f"experiment={preset}", "model.fid_every=0", "model.channels_last=true",
                 "trainer.precision=bf16-mixed", f"trainer.accelerator={accelerator}",
                 "trainer.devices=1", "trainer.max_epochs=2", "logger=csv", "data.num_workers=0", *QUIET,
                 "+callbacks.step_timer._target_=step_timer.StepTimer", f"+callbacks.step_timer.out={timing}"]
    if sizes.gan_batches:
        overrides += [f"trainer.limit_train_batches={sizes.gan_batches}", "data.batch_size=8",
                      "data.train_per_class=4", "data.val_per_class=2"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(folder / preset)
        cfg.paths.data_dir = str(folder / "data")
    run(cfg)
    timed = json.loads(timing.read_text())
    return timed["batches"] / timed["seconds"]


def main(argv: list[str] | None = None) -> list[dict]:
    """Measure every row; print the table, write the JSON; return the rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (a CPU, or a smoke test)")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    sizes = Sizes(args.tiny or device() == "cpu")
    measures = {("classifier", f"{side}, {mode}", "img/s"): functools.partial(measure, sizes, compile)
                for mode, compile in (("eager", False), ("compiled", sizes.compile))
                for side, measure in (("visionlab", visionlab_classifier), ("plain loop", plain_classifier))}
    measures |= {(preset, "visionlab", "G steps/s"): functools.partial(gan_preset, sizes, preset)
                 for preset in ("dcgan_shapes", "gan_backbone_d_shapes")}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for (job, side, unit), measure in measures.items():
            reset_peak()
            value = measure(Path(tmp))
            rows.append({"job": job, "side": side, "unit": unit, "value": round(value, 2),
                         "peak_memory_mb": round(peak_memory_mb())})
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print_table(f"{name}: {sizes.backbone} at {sizes.image_size} px, batch {sizes.batch}; channels_last, "
                "bf16-mixed",
                ["job", "side", "unit", "value", "peak MB"],
                [[r["job"], r["side"], r["unit"], r["value"], r["peak_memory_mb"]] for r in rows])
    if args.json:
        Path(args.json).write_text(json.dumps({"device": name, "rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
