"""Benchmark: a GAN preset trained from its DataLoader against the same run from memory.

    python bench/gan_in_memory.py                      # dcgan_shapes, 3 epochs, 3 repetitions
    python bench/gan_in_memory.py --epochs 5 --repeats 5

Runs ``python train.py experiment=dcgan_shapes`` (FID off) with ``data.in_memory=false`` and
``true``, alternating, each in a fresh process, and reports the median seconds of the whole job
(start-up and decoding included) and the speed-up. The two runs take the same steps on the same batches
(``tests/test_gan.py``); what differs is decoding, transforming and collating 64 PNGs a step.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import QUIET, ROOT, alternate, load_average, median, print_table


def run(folder: Path, held: bool, epochs: int, number: list[int]) -> float:
    """Seconds of one whole job (start-up, decoding, training, the last grid and checkpoint)."""
    number[0] += 1
    start = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "train.py"), "experiment=dcgan_shapes",
                    f"trainer.max_epochs={epochs}", "model.fid_every=0",
                    f"data.in_memory={str(held).lower()}", "logger=csv", *QUIET,
                    f"hydra.run.dir={folder / f'run{number[0]}'}", f"paths.data_dir={folder / 'data'}"],
                   check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    """Alternate the two, print the medians and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder, number = Path(tmp), [0]
        run(folder, False, 1, number)  # generate the data once, outside the measurement
        times = alternate({"loader": lambda: run(folder, False, args.epochs, number),
                           "memory": lambda: run(folder, True, args.epochs, number)}, args.repeats)
    loader, memory = median(times["loader"]), median(times["memory"])
    print_table(f"dcgan_shapes, {args.epochs} epochs, whole job (median of {args.repeats}; {load_average()})",
                ["", "seconds", "speed"], [["data.in_memory=false (DataLoader)", loader, 1.0],
                                           ["data.in_memory=true", memory, loader / memory]])


if __name__ == "__main__":
    main()
