"""Benchmark: a trained classifier used from its checkpoint, against the same work done by hand.

    python bench/trained_model.py               # 5 repetitions of each
    python bench/trained_model.py --repeats 9

Trains the default job for one epoch (shapes_net at 64 px) in a temporary folder, copies its best
checkpoint out of the run, then measures, alternating the pair in every repetition:

- ``visionlab.load(ckpt).predict(images)`` over 256 images given as a uint8 tensor, against a bare
  loop that normalises the same tensor and runs the same network (``model(batch)``) at the same
  batch size: the ratio bare / predict is its speed relative to the bare loop (target >= 0.9);
- ``visionlab predict model.ckpt one.png`` in a fresh process from an empty folder, against a bare
  script that imports torch and torchvision, ``torch.load``s the same checkpoint and runs the
  network (its TorchScript export, so no visionlab code) once on the image: the ratio
  predict / bare (target <= 1.3; the imports dominate both).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import QUIET, ROOT, alternate, load_average, median, print_table, timed

IMAGES, BATCH = 256, 64

BARE_SCRIPT = """
import sys, json
import torch, torchvision
from torchvision.io import decode_image
state = torch.load(sys.argv[1], weights_only=True)
names = state["hyper_parameters"]["class_names"]
network = torch.jit.load(sys.argv[2])
image = decode_image(sys.argv[3]).float() / 255
x = torchvision.transforms.functional.normalize(image, [0.5] * 3, [0.5] * 3)[None]
with torch.no_grad():
    print(names[int(network(x).argmax())])
"""


def train_checkpoint(folder: Path) -> Path:
    """The best checkpoint of a one-epoch default job trained in ``folder``, copied out of its run."""
    env = {**os.environ, "VISIONLAB_DATA_DIR": str(folder / "data")}
    subprocess.run([sys.executable, str(ROOT / "train.py"), "trainer.max_epochs=1", *QUIET,
                    f"hydra.run.dir={folder / 'run'}"], cwd=folder, env=env, check=True, capture_output=True)
    best = next((folder / "run" / "checkpoints").glob("epoch_*.ckpt"))
    return Path(shutil.copy(best, folder / "model.ckpt"))


def python_calls(checkpoint: Path, repeats: int) -> list[list[object]]:
    """``predict`` over a tensor of images against the bare loop, in this process."""
    import torch

    import visionlab

    torch.set_num_threads(1)
    model = visionlab.load(checkpoint)
    config = model.input_config
    images = torch.randint(0, 256, (IMAGES, 3, config.input_size, config.input_size), dtype=torch.uint8)
    network = model.export_network().eval()
    mean = torch.tensor(config.mean).view(1, -1, 1, 1)
    std = torch.tensor(config.std).view(1, -1, 1, 1)

    def bare() -> None:
        with torch.no_grad():
            for chunk in images.split(BATCH):
                network((chunk.float() / 255 - mean) / std).softmax(-1)

    def predict() -> None:
        model.predict(images, batch_size=BATCH)

    bare(), predict()  # warm-up
    times = alternate({"bare": lambda: timed(bare), "predict": lambda: timed(predict)}, repeats)
    return [[f"bare loop over {IMAGES} images", median(times["bare"]), 1.0],
            ["visionlab.load(ckpt).predict(images)", median(times["predict"]),
             median(times["bare"]) / median(times["predict"])]]


def command_line(checkpoint: Path, folder: Path, repeats: int) -> list[list[object]]:
    """``visionlab predict`` of one image in a fresh process against the bare script."""
    import visionlab

    image = next((folder / "data").rglob("*.png"))
    exported = folder / "export"
    visionlab.export(visionlab.load(checkpoint), "torchscript", exported)
    empty = folder / "empty"
    empty.mkdir()
    visionlab_cli = shutil.which("visionlab") or "visionlab"
    out = folder / "p.csv"

    def run(command: list[str]) -> float:
        start = time.perf_counter()
        subprocess.run(command, cwd=empty, check=True, capture_output=True)
        return time.perf_counter() - start

    commands = {
        "bare": [sys.executable, "-c", BARE_SCRIPT, str(checkpoint), str(exported / "model.pt"), str(image)],
        "predict": [visionlab_cli, "predict", str(checkpoint), str(image), "--out", str(out), "--force"],
    }
    times = alternate({name: (lambda c=command: run(c)) for name, command in commands.items()}, repeats)
    return [["bare script: import torch+torchvision, torch.load, run once", median(times["bare"]), 1.0],
            ["visionlab predict model.ckpt one.png", median(times["predict"]),
             median(times["predict"]) / median(times["bare"])]]


def main() -> None:
    """Train, copy the checkpoint, measure both pairs, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args().repeats
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        checkpoint = train_checkpoint(folder)
        print_table(f"predict over {IMAGES} images, batch {BATCH}, 1 thread (median of {repeats}; "
                    f"{load_average()})", ["", "seconds", "speed vs bare"], python_calls(checkpoint, repeats))
        print_table(f"one image from a copied checkpoint, fresh process (median of {repeats}; "
                    f"{load_average()})",
                    ["", "seconds", "time vs bare"], command_line(checkpoint, folder, repeats))


if __name__ == "__main__":
    main()
