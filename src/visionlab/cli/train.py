"""``visionlab train [overrides]`` and ``visionlab lr-find [overrides]``: a training job (or the
learning-rate range test), the same Hydra task as ``python train.py``."""

from __future__ import annotations

import argparse
import sys

from visionlab.cli.commands import command
from visionlab.project import find_conf_dir


@command("train", "train a model (Hydra overrides and flags such as -m follow, as for train.py)", hydra=True)
def cmd_train(args: argparse.Namespace) -> None:
    """Run the Hydra task on ``args.overrides``, as ``python train.py`` would."""
    from visionlab.cli.entry import hydra_train_main

    sys.argv = ["visionlab train", *args.overrides]
    hydra_train_main(str(find_conf_dir()))()


@command("lr-find", "the learning-rate range test on the composed run: writes <run>/lr_find.png, prints the "
                    "optimizer.lr to use (= train tune=lr_find)", hydra=True)
def cmd_lr_find(args: argparse.Namespace) -> None:
    """``visionlab train tune=lr_find <overrides>``."""
    cmd_train(argparse.Namespace(overrides=["tune=lr_find", *args.overrides]))
