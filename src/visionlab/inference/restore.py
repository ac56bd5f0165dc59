"""A trained image-to-image GAN on a user's image files: upscale them (SRGAN) or fill holes in
them (inpainting), written as PNGs beside what the model was given."""

from __future__ import annotations

from pathlib import Path

from rich.progress import Progress
from torchvision.utils import save_image


def restore_files(model, images: list[Path], root: Path, out: Path, mask: str | None = None,
                  seed: int = 0) -> list[Path]:
    """Restore every image under ``root`` with a module that serves ``restore`` (its
    :meth:`~visionlab.modules.capabilities.Restores.restore`); returns the files written, under
    ``out`` in the same subfolders as their images under ``root`` (so that ``a/01.png`` and
    ``b/01.png`` do not overwrite each other): ``<stem>_<name>.png`` for every image the model
    returns (SRGAN: ``_x4``; inpainting: ``_masked`` and ``_inpainted``, image i's holes drawn from
    seed ``seed + i``)."""
    written = []
    with Progress(transient=True) as bar:
        task = bar.add_task(model.restore_verb, total=len(images))
        for index, path in enumerate(images):
            folder = out / path.parent.relative_to(root)
            folder.mkdir(parents=True, exist_ok=True)
            (restored,) = model.restore([path], mask, seed + index)
            for name, image in restored.items():
                target = folder / f"{path.stem}_{name}.png"
                save_image(image, target)
                written.append(target)
            bar.advance(task)
    return written
