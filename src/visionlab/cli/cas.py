"""``visionlab cas``: the Classification Accuracy Score of a conditional GAN, beside real data."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from visionlab.checkpoint_header import output_root, require
from visionlab.cli.checks import chosen_checkpoint, positive
from visionlab.cli.commands import command
from visionlab.errors import UserError
from visionlab.project import find_conf_dir


def cmd_cas(checkpoint: Path, conf_dir: Path, out: Path, per_class: int | None, overrides: list[str],
            seed: int) -> None:
    """Run the CAS into ``out`` (an earlier CAS there is replaced: cli/checks.py allowed it) and
    print the two accuracies."""
    from visionlab.cas import classification_accuracy_score

    if out.exists():
        shutil.rmtree(out)
    result = classification_accuracy_score(checkpoint, conf_dir, out, per_class, overrides, seed)
    print(f"CAS: trained on {result.per_class} generated images per class of {result.classes}, the "
          f"classifier scores {result.generated_accuracy:.4f} on the {result.test_images} real test images; "
          f"trained on as many real ones, {result.real_accuracy:.4f} (ratio {result.ratio:.2f}; chance "
          f"{1 / result.classes:.3f}); written to {out / 'cas.json'}")


def cas_arguments(parser: argparse.ArgumentParser) -> None:
    """The checkpoint, the classifier's overrides, how many images per class, where."""
    parser.add_argument("checkpoint", type=Path, help="a conditional GAN's checkpoint, or its run folder")
    parser.add_argument("overrides", nargs="*",
                        help="the classifier's overrides (default: the default job's)")
    parser.add_argument("--per-class", type=int, default=None,
                        help="images per class (default: as many as the smallest real class has)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: <run>/cas)")
    parser.add_argument("--force", action="store_true", help="replace an earlier CAS in --out")
    parser.add_argument("--seed", type=int, default=0)


def check_cas(args: argparse.Namespace) -> argparse.Namespace:
    """A conditional GAN's checkpoint (a run folder's best, else last), a positive ``--per-class``,
    and an output folder that is new, or an earlier CAS's with ``--force``."""
    checkpoint = chosen_checkpoint(args.checkpoint)
    header = require(checkpoint, ("draw",), "cas")
    if not header.hyper_parameters.get("conditional"):
        raise UserError(f"{checkpoint} is an unconditional {header.kind}: the CAS needs images of a class on "
                        "demand (train with model.conditional=true, e.g. experiment=cgan_shapes)")
    positive(args.per_class, "--per-class")
    out = args.out or output_root(checkpoint) / "cas"
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        if not (args.force and (out / "cas.json").is_file()):
            raise UserError(f"{out} already exists: give another --out, or --force to replace an earlier CAS "
                            "there")
    return argparse.Namespace(**(vars(args) | {"checkpoint": checkpoint, "out": out}))


@command("cas", "Classification Accuracy Score of a conditional GAN: a classifier trained on its images vs "
                "one trained on as many real ones, both tested on real", cas_arguments, check_cas,
         trailing_overrides=True)
def run_cas(args: argparse.Namespace) -> None:
    """:func:`cmd_cas` on the checked arguments."""
    cmd_cas(args.checkpoint, find_conf_dir(), args.out, args.per_class, args.overrides, args.seed)
