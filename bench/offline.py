"""Benchmark: how long a run that needs a download takes to fail on a machine without network.

    python bench/offline.py                # 3 repetitions of each
    python bench/offline.py --repeats 5 --endpoint https://huggingface.co

Each in a fresh interpreter with an empty hub cache, alternating:

- ``offline``: ``python train.py backbone=timm backbone.name=test_resnet`` (pretrained weights
  from the hub, not cached) with the hub endpoint at a port nothing listens on (``--endpoint``:
  another one, e.g. the real hub on a machine whose DNS or firewall is what fails);
- ``reference``: the same command without the download (``backbone.pretrained=false``) refused
  just after that check (``data.batch_size=0``): the interpreter, imports and composition alone.

The difference of the medians is the time spent learning that the network is down; before
``require_available`` it was the hub client's minute of retries (see the README).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

from common import ROOT, alternate, load_average, median, print_table

RUN = ["train.py", "backbone=timm", "backbone.name=test_resnet", "hydra.run.dir=${oc.env:BENCH_RUN_DIR}"]


def closed_port() -> str:
    """A local URL nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def seconds_to_error(args: list[str], endpoint: str, expected: str) -> float:
    """Wall seconds until ``python args`` exits with the one-line error containing ``expected``."""
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HOME": home, "TORCH_HOME": home,
               "BENCH_RUN_DIR": f"{home}/run"}
        env.pop("HF_HUB_OFFLINE", None)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if done.returncode != 2 or expected not in done.stderr:
        raise SystemExit(f"python {' '.join(args)}: exit {done.returncode}, expected the line with "
                         f"{expected!r}; stderr ends: {done.stderr[-400:]}")
    return seconds


def main() -> None:
    """Alternate the offline and reference runs; print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--endpoint", default=None, help="hub endpoint (default: a closed local port)")
    args = parser.parse_args()
    endpoint = args.endpoint or closed_port()
    times = alternate({
        "offline": lambda: seconds_to_error(RUN, endpoint, "visionlab prefetch"),
        "reference": lambda: seconds_to_error([*RUN, "backbone.pretrained=false", "data.batch_size=0"],
                                              endpoint, "data.batch_size=0 must be"),
    }, args.repeats)
    offline, reference = median(times["offline"]), median(times["reference"])
    title = f"seconds to the error line, median of {args.repeats}, endpoint {endpoint}, {load_average()}"
    rows = [["offline (pretrained, not cached)", offline, str(times["offline"])],
            ["reference (refused at the same point)", reference, str(times["reference"])]]
    print_table(title, ["run", "seconds", "all"], rows)
    print(f"summary: learning that the network is down took {offline - reference:.1f} s")


if __name__ == "__main__":
    main()
