"""The ``visionlab`` commands' arguments checked before torch and Lightning load (5-6 s): a missing
path, a file of the wrong kind or a bad value is one line in well under a second.

Each ``check_<command>`` takes the parsed arguments, raises a UserError for what cannot work, and
fills in defaults that depend on the checkpoint (where ``predict`` writes its CSV).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from visionlab.checkpoint_header import output_root, require, run_checkpoint
from visionlab.errors import UserError
from visionlab.image_files import find_images


def positive(value: int | None, flag: str) -> None:
    """A UserError unless ``value`` is None or at least 1."""
    if value is not None and value < 1:
        raise UserError(f"{flag} {value} must be at least 1")


def free_output(path: Path, force: bool) -> None:
    """A UserError when ``path`` exists and ``--force`` was not given: nothing is overwritten silently."""
    if path.exists() and not force:
        raise UserError(f"{path} exists: give another --out, or --force to replace it")


def check_eval(args: argparse.Namespace) -> None:
    """Every checkpoint (or run folder: its checkpoint) before the overrides classifies."""
    args.checkpoints = [chosen_checkpoint(Path(t)) for t in args.targets if "=" not in t]
    args.overrides = [t for t in args.targets if "=" in t]
    if not args.checkpoints:
        raise UserError("eval needs at least one checkpoint (.ckpt) before the overrides")
    for checkpoint in args.checkpoints:
        require(checkpoint, ("classify",), "eval")


def check_predict(args: argparse.Namespace) -> None:
    """A checkpoint (or run folder) that classifies, an existing input, positive sizes; the CSV's path
    decided and free."""
    args.checkpoint = chosen_checkpoint(args.checkpoint)
    require(args.checkpoint, ("classify",), "predict")
    args.images, args.skipped = find_images(args.input)
    positive(args.top_k, "--top-k")
    positive(args.batch_size, "--batch-size")
    if args.out is None:
        name = args.input.resolve().stem or "input"
        args.out = output_root(args.checkpoint) / "predictions" / f"{name}.csv"
    if args.out.is_dir():
        raise UserError(f"--out {args.out} is a folder: give the path of the CSV to write")
    free_output(args.out, args.force)


def check_export(args: argparse.Namespace) -> None:
    """A checkpoint that exports (the format and output choices are the parser's); ``--out`` a folder
    (another format's export may share it: the export refuses only to overwrite a file)."""
    args.checkpoint = chosen_checkpoint(args.checkpoint)
    require(args.checkpoint, ("export",), "export")
    if args.out is None:
        args.out = output_root(args.checkpoint) / "export" / args.format
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} is a file: give the folder to write the {args.format} model into")


def chosen_checkpoint(path: Path) -> Path:
    """``path``, or for a run folder the checkpoint it is used through (:func:`run_checkpoint`, said
    aloud)."""
    checkpoint = run_checkpoint(path)
    if checkpoint != path:
        print(f"using {checkpoint}")
    return checkpoint


def check_sample(args: argparse.Namespace) -> None:
    """A checkpoint that draws or restores (a run folder's best, else last), and only the options it
    takes."""
    args.checkpoint = chosen_checkpoint(args.checkpoint)
    header = require(args.checkpoint, ("draw", "restore"), "sample")
    takes = header.sample_options
    positive(args.n, "--n")
    positive(args.per_class, "--per-class")
    if (args.label is not None or args.per_class) and not header.hyper_parameters.get("conditional"):
        raise UserError("--label and --per-class need a conditional GAN (trained with "
                        "model.conditional=true)")
    if "input" in takes and args.source is None:
        raise UserError(f"{args.checkpoint} is {header.describe()}; it restores images rather than drawing "
                        "them: give --input <image or folder>")
    if "input" not in takes and args.source is not None:
        raise UserError("--input is for checkpoints that restore images (srgan, inpaint); "
                        f"{args.checkpoint} is "
                        f"{header.describe()}: drop --input")
    if args.source is not None and not args.source.exists():
        raise UserError(f"--input {args.source} does not exist: give an image file or a folder of images")
    if args.mask is not None and "mask" not in takes:
        raise UserError(f"--mask is for inpaint checkpoints, and {args.checkpoint} is {header.describe()}: "
                        "drop --mask")
    if args.out is None:
        args.out = output_root(args.checkpoint) / "generated"  # samples/ holds the training's grids
    if args.out.is_dir() and any(args.out.iterdir()) and not args.force:
        raise UserError(f"{args.out} already holds files: give another --out, or --force to write over them")


def check_cas(args: argparse.Namespace) -> None:
    """A conditional GAN's checkpoint (a run folder's best, else last), a positive ``--per-class``,
    and an output folder that is new, or an earlier CAS's with ``--force``."""
    args.checkpoint = chosen_checkpoint(args.checkpoint)
    header = require(args.checkpoint, ("draw",), "cas")
    if not header.hyper_parameters.get("conditional"):
        raise UserError(f"{args.checkpoint} is an unconditional {header.kind}: the CAS needs images of a "
                        "class on "
                        "demand (train with model.conditional=true, e.g. experiment=cgan_shapes)")
    positive(args.per_class, "--per-class")
    if args.out is None:
        args.out = output_root(args.checkpoint) / "cas"
    if args.out.exists() and not (args.out.is_dir() and not any(args.out.iterdir())):
        if not (args.force and (args.out / "cas.json").is_file()):
            raise UserError(f"{args.out} already exists: give another --out, or --force to replace an "
                            "earlier CAS there")


def check_compare(args: argparse.Namespace) -> None:
    """``--top`` is positive (the folders are checked by cmd_compare, which tests call directly)."""
    positive(args.top, "--top")


CHECKS = {"eval": check_eval, "predict": check_predict, "export": check_export, "sample": check_sample,
          "compare": check_compare, "cas": check_cas}


def check_before_imports(args: argparse.Namespace) -> None:
    """Run the check of ``args.command``, if it has one."""
    check = CHECKS.get(args.command)
    if check is not None:
        check(args)
