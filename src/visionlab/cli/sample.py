"""``visionlab sample``: images drawn from a trained noise model (GAN, LAPGAN), or a user's images
restored by an image-to-image one (SRGAN: upscaled, inpainting: filled), from the checkpoint alone
(no config needed), through the model's own ``draw`` or ``restore``: whichever it serves."""

from __future__ import annotations

import argparse
from pathlib import Path

from visionlab.checkpoint_header import output_root, require
from visionlab.cli.checks import chosen_checkpoint, positive
from visionlab.cli.commands import command
from visionlab.errors import UserError


def cmd_restore(model, source: Path, out: Path, mask: str | None, seed: int) -> None:
    """Upscale (SRGAN) or inpaint every image under ``source`` into ``out``."""
    from visionlab.image_files import find_images
    from visionlab.inference.restore import restore_files

    images, skipped = find_images(source)
    written = restore_files(model, images, source if source.is_dir() else source.parent, out, mask, seed)
    print(f"{len(images)} image(s) {model.restore_verb}: {len(written)} "
          f"file(s) written to {out}" + (f" ({len(skipped)} non-image file(s) skipped)" if skipped else ""))


def cmd_sample(checkpoint: Path, count: int, out: Path, label: str | None, per_class: int | None,
               seed: int, source: Path | None = None, mask: str | None = None) -> None:
    """Models that draw: write ``count`` PNGs and ``grid.png`` to ``out``, or with ``per_class`` an
    ImageFolder tree. Models that restore: restore ``source``. (The options each takes are checked
    by :func:`check_sample` before anything loads.)"""
    from torchvision.utils import make_grid, save_image

    from visionlab.inference.checkpoint import load
    from visionlab.inference.sampling import write_generated_tree
    from visionlab.nets.masks import check_mask

    model = load(checkpoint)
    if mask is not None:
        check_mask(mask, "--mask")
    if "restore" in model.capabilities:
        cmd_restore(model, source, out, mask, seed)
        return
    shape = model.hparams.get("sample_shape")  # points (toy2d) rather than images; LAPGAN: always images
    if shape is not None and len(shape) != 3:
        raise UserError(f"this GAN makes samples of shape {tuple(shape)}, not images")
    if per_class:
        write_generated_tree(model, per_class, seed, out)
        print(f"{per_class} images per class of {len(model.hparams.class_names)} classes written to {out} "
              "(an ImageFolder tree: train on it with data=image_folder data.root=...)")
        return
    images = model.draw(count, label, seed)
    out.mkdir(parents=True, exist_ok=True)
    for number, image in enumerate(images):
        save_image(image, out / f"sample_{number:04d}.png")
    save_image(make_grid(images, nrow=max(1, int(count**0.5)), padding=2), out / "grid.png")
    print(f"{count} samples and grid.png written to {out}")


def sample_arguments(parser: argparse.ArgumentParser) -> None:
    """The checkpoint; how many images, of which class, from which seed; or the images to restore."""
    parser.add_argument("checkpoint", type=Path,
                        help="a model=gan|lapgan|srgan|inpaint run's checkpoint, or its run folder (its "
                             "best.ckpt by val/fid, else last.ckpt)")
    parser.add_argument("--n", type=int, default=64, help="number of images")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: <run>/generated)")
    parser.add_argument("--force", action="store_true", help="write into --out even if it holds files")
    parser.add_argument("--label", default=None, help="conditional GAN: the class to draw (name or index)")
    parser.add_argument("--per-class", type=int, default=None,
                        help="conditional GAN: write this many images per class as an ImageFolder tree")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--input", type=Path, default=None, dest="source",
                        help="srgan / inpaint: an image or a folder of images to upscale or inpaint")
    parser.add_argument("--mask", default=None, help="inpaint: center | random_boxes | free_form, the holes "
                                                     "to make (default: the model's model.mask)")


def check_sample(args: argparse.Namespace) -> argparse.Namespace:
    """A checkpoint that draws or restores (a run folder's best, else last), and only the options it
    takes; the output folder decided and free."""
    checkpoint = chosen_checkpoint(args.checkpoint)
    header = require(checkpoint, ("draw", "restore"), "sample")
    takes = header.sample_options
    positive(args.n, "--n")
    positive(args.per_class, "--per-class")
    if (args.label is not None or args.per_class) and not header.hyper_parameters.get("conditional"):
        raise UserError("--label and --per-class need a conditional GAN (trained with "
                        "model.conditional=true)")
    if "input" in takes and args.source is None:
        raise UserError(f"{checkpoint} is {header.describe()}; it restores images rather than drawing them: "
                        "give --input <image or folder>")
    if "input" not in takes and args.source is not None:
        raise UserError(f"--input is for checkpoints that restore images (srgan, inpaint); {checkpoint} is "
                        f"{header.describe()}: drop --input")
    if args.source is not None and not args.source.exists():
        raise UserError(f"--input {args.source} does not exist: give an image file or a folder of images")
    if args.mask is not None and "mask" not in takes:
        raise UserError(f"--mask is for inpaint checkpoints, and {checkpoint} is {header.describe()}: "
                        "drop --mask")
    out = args.out or output_root(checkpoint) / "generated"  # samples/ holds the training's grids
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise UserError(f"{out} already holds files: give another --out, or --force to write over them")
    return argparse.Namespace(**(vars(args) | {"checkpoint": checkpoint, "out": out}))


@command("sample", "write images drawn from a GAN or LAPGAN checkpoint, or upscale (SRGAN) or inpaint a "
                   "user's images", sample_arguments, check_sample)
def run_sample(args: argparse.Namespace) -> None:
    """:func:`cmd_sample` on the checked arguments."""
    cmd_sample(args.checkpoint, args.n, args.out, args.label, args.per_class, args.seed, args.source,
               args.mask)
