"""``visionlab prefetch [-m] [overrides]``: download what a run (or every job of a sweep) would load
from the network, into the caches it reads, on a machine that has the network."""

from __future__ import annotations

import argparse
import sys

from visionlab.cli.commands import command
from visionlab.cli.errors import EXIT_USER_ERROR
from visionlab.project import find_conf_dir

FLAGS = ("-m", "--multirun")


def prefetch_arguments(parser: argparse.ArgumentParser) -> None:
    """``-m`` and the run's overrides."""
    parser.add_argument("-m", "--multirun", action="store_true", help="the overrides describe a sweep")
    parser.add_argument("overrides", nargs=argparse.REMAINDER,
                        help="the run's overrides, e.g. backbone=resnet18")


@command("prefetch", "download what the run (-m: every job of the sweep) of these overrides loads from the "
                     "network, into the caches it reads", prefetch_arguments)
def cmd_prefetch(args: argparse.Namespace) -> None:
    """Fetch every job's files; exit 2 when a job's overrides did not compose (the others' are fetched)."""
    from visionlab.prefetch import prefetch

    failed = prefetch(find_conf_dir(), [o for o in args.overrides if o not in FLAGS],
                      args.multirun or any(o in FLAGS for o in args.overrides))
    if failed:
        print(f"error: visionlab prefetch: {failed} job(s) did not compose (above); the others' files are "
              "fetched", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
