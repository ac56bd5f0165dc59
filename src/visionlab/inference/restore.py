"""A trained image-to-image GAN on a user's image files: upscale them (SRGAN) or fill holes in
them (inpainting), written as PNGs beside what the model was given."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from rich.progress import Progress
from torchvision.transforms.functional import pil_to_tensor, resize
from torchvision.utils import save_image

from visionlab.data.masks import make_masks


def load_image(path: Path, channels: int, size: int | None = None) -> torch.Tensor:
    """``(1, channels, H, W)`` in [-1, 1] (gray for 1 channel), resized to ``size`` x ``size`` if given."""
    with Image.open(path) as image:
        x = pil_to_tensor(image.convert("L" if channels == 1 else "RGB")).float() / 255
    if size is not None:
        x = resize(x, [size, size], antialias=True)
    return x.unsqueeze(0) * 2 - 1


def _save(images: torch.Tensor, path: Path) -> None:
    save_image((images * 0.5 + 0.5).clamp(0, 1), path)


@torch.no_grad()
def restore_files(model, images: list[Path], root: Path, out: Path, mask: str | None = None,
                  seed: int = 0) -> list[Path]:
    """Upscale (``model.kind == "srgan"``) or inpaint every image under ``root``; returns the files
    written, under ``out`` in the same subfolders as their images under ``root`` (so that
    ``a/01.png`` and ``b/01.png`` do not overwrite each other).

    SRGAN keeps each image's size and writes ``<stem>_x<scale>.png``. Inpainting resizes each image
    to the model's ``image_size``, hides ``mask`` holes (the model's own kind when None; image i
    uses seed ``seed + i``) and writes ``<stem>_masked.png`` and ``<stem>_inpainted.png``.
    """
    hparams, written = model.hparams, []
    with Progress(transient=True) as bar:
        task = bar.add_task("upscaling" if model.kind == "srgan" else "inpainting", total=len(images))
        for index, path in enumerate(images):
            folder = out / path.parent.relative_to(root)
            folder.mkdir(parents=True, exist_ok=True)
            if model.kind == "srgan":
                target = folder / f"{path.stem}_x{hparams.scale}.png"
                _save(model(load_image(path, hparams.channels)), target)
                written.append(target)
            else:
                image = load_image(path, hparams.channels, hparams.image_size)
                holes = make_masks(mask or hparams.mask, 1, hparams.image_size, seed + index)
                pair = (folder / f"{path.stem}_masked.png", folder / f"{path.stem}_inpainted.png")
                _save(image * (1 - holes), pair[0])
                _save(model(image, holes), pair[1])
                written += pair
            bar.advance(task)
    return written
