"""A trained image-to-image GAN on a user's image files: upscale them (SRGAN) or fill holes in
them (inpainting), written as PNGs beside what the model was given."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from rich.progress import Progress
from torchvision.transforms.functional import pil_to_tensor, resize
from torchvision.utils import save_image


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
    """Restore every image under ``root`` with an image-to-image module (SRGAN: upscale, inpainting:
    fill holes); returns the files written, under ``out`` in the same subfolders as their images
    under ``root`` (so that ``a/01.png`` and ``b/01.png`` do not overwrite each other).

    Each image is resized to ``model.restore_size()`` (kept at its own size when None) and gives
    ``<stem>_<suffix>.png`` for every output of ``model.restore_outputs`` (SRGAN: ``_x4``;
    inpainting: ``_masked`` and ``_inpainted``, image i's holes drawn from seed ``seed + i``).
    """
    hparams, written = model.hparams, []
    with Progress(transient=True) as bar:
        task = bar.add_task(model.restore_verb, total=len(images))
        for index, path in enumerate(images):
            folder = out / path.parent.relative_to(root)
            folder.mkdir(parents=True, exist_ok=True)
            image = load_image(path, hparams.channels, model.restore_size())
            for suffix, restored in model.restore_outputs(image, mask, seed + index).items():
                target = folder / f"{path.stem}_{suffix}.png"
                _save(restored, target)
                written.append(target)
            bar.advance(task)
    return written
