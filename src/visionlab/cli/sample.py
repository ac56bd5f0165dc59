"""``visionlab sample``: images drawn from a trained noise model (GAN, LAPGAN), or a user's images
restored by an image-to-image one (SRGAN: upscaled, inpainting: filled), from the checkpoint alone
(no config needed), through the model's own ``draw`` or ``restore``: whichever it serves."""

from __future__ import annotations

from pathlib import Path

from torchvision.utils import make_grid, save_image

from visionlab.errors import UserError
from visionlab.inference.checkpoint import load
from visionlab.inference.sampling import write_generated_tree
from visionlab.nets.masks import check_mask


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
    by cli/checks.py before anything loads.)"""
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
