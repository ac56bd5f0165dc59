"""The ``visionlab`` commands' arguments checked before torch and Lightning load (5-6 s): a missing
path, a file of the wrong kind or a bad value is one line in well under a second.

Each ``check_<command>`` takes the parsed arguments, raises a UserError for what cannot work, and
fills in defaults that depend on the checkpoint (where ``predict`` writes its CSV).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from visionlab.checkpoint_header import require_classifier, require_samplable, run_dir_of
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
    """Every checkpoint before the overrides is a classifier's."""
    checkpoints = [Path(t) for t in args.targets if "=" not in t]
    if not checkpoints:
        raise UserError("eval needs at least one checkpoint (.ckpt) before the overrides")
    for checkpoint in checkpoints:
        require_classifier(checkpoint)


def check_predict(args: argparse.Namespace) -> None:
    """A classifier checkpoint, an existing input, positive sizes; the CSV's path decided and free."""
    require_classifier(args.checkpoint)
    args.images, args.skipped = find_images(args.input)
    positive(args.top_k, "--top-k")
    positive(args.batch_size, "--batch-size")
    if args.out is None:
        name = args.input.resolve().stem or "input"
        args.out = run_dir_of(args.checkpoint) / "predictions" / f"{name}.csv"
    if args.out.is_dir():
        raise UserError(f"--out {args.out} is a folder: give the path of the CSV to write")
    free_output(args.out, args.force)


def check_export(args: argparse.Namespace) -> None:
    """A classifier checkpoint (the format and output choices are the parser's); ``--out`` a folder
    without an earlier export, unless ``--force``."""
    require_classifier(args.checkpoint)
    if args.out is None:
        args.out = run_dir_of(args.checkpoint) / "export" / args.format
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} is a file: give the folder to write the {args.format} model into")
    if args.out.is_dir() and any(args.out.glob("model.*")) and not args.force:
        raise UserError(f"{args.out} holds an earlier export: give another --out, or --force to replace it")


def run_checkpoint(run_dir: Path) -> Path:
    """The checkpoint of a run folder to draw from: ``best.ckpt`` (the lowest ``val/fid``) when the
    run judged its FID, else ``last.ckpt``."""
    for name in ("best.ckpt", "last.ckpt"):
        if (run_dir / "checkpoints" / name).is_file():
            return run_dir / "checkpoints" / name
    raise UserError(f"{run_dir} holds no checkpoints/best.ckpt or last.ckpt: give a run folder or a "
                    ".ckpt file")


def drawn_checkpoint(path: Path) -> Path:
    """``path``, or for a run folder the checkpoint to draw from (:func:`run_checkpoint`, said aloud)."""
    if not path.is_dir():
        return path
    checkpoint = run_checkpoint(path)
    print(f"drawing from {checkpoint}")
    return checkpoint


def check_sample(args: argparse.Namespace) -> None:
    """A checkpoint sample can use (a run folder's best, else last), and only the options its kind
    takes."""
    args.checkpoint = drawn_checkpoint(args.checkpoint)
    header = require_samplable(args.checkpoint)
    kind, takes = header.kind, header.sample_options
    positive(args.n, "--n")
    positive(args.per_class, "--per-class")
    if (args.label is not None or args.per_class) and not header.hyper_parameters.get("conditional"):
        raise UserError("--label and --per-class need a conditional GAN (trained with "
                        "model.conditional=true)")
    if "input" in takes and args.source is None:
        raise UserError(f"this {kind} checkpoint restores images rather than drawing them: give "
                        "--input <image or folder>")
    if "input" not in takes and args.source is not None:
        raise UserError(f"--input is for image-to-image checkpoints (srgan, inpaint); this {kind} "
                        "checkpoint draws from noise: drop --input")
    if args.source is not None and not args.source.exists():
        raise UserError(f"--input {args.source} does not exist: give an image file or a folder of images")
    if args.mask is not None and "mask" not in takes:
        raise UserError(f"--mask is for inpaint checkpoints, not {kind}: drop --mask")
    if args.out is None:
        args.out = run_dir_of(args.checkpoint) / "generated"  # samples/ holds the training's grids
    if args.out.is_dir() and any(args.out.iterdir()) and not args.force:
        raise UserError(f"{args.out} already holds files: give another --out, or --force to write over them")


def check_cas(args: argparse.Namespace) -> None:
    """A conditional GAN's checkpoint (a run folder's best, else last), a positive ``--per-class``,
    and an output folder that is new, or an earlier CAS's with ``--force``."""
    args.checkpoint = drawn_checkpoint(args.checkpoint)
    header = require_samplable(args.checkpoint)
    if "n" not in header.sample_options:
        raise UserError(f"{args.checkpoint} is a {header.kind} checkpoint, which restores images: the CAS "
                        "needs a conditional GAN (model=gan or lapgan with model.conditional=true)")
    if not header.hyper_parameters.get("conditional"):
        raise UserError(f"{args.checkpoint} is an unconditional {header.kind}: the CAS needs images of a "
                        "class on demand (train with model.conditional=true, e.g. experiment=cgan_shapes)")
    positive(args.per_class, "--per-class")
    if args.out is None:
        args.out = run_dir_of(args.checkpoint) / "cas"
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
