"""The embedded synthetic ``shapes`` datasets as a DataModule (generated on first use)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from visionlab.data.image_folder import ImageFolderDataModule
from visionlab.data.shapes import generate, spec_for


class ShapesDataModule(ImageFolderDataModule):
    """``shapes``, ``shapes_source`` or ``shapes_target``, written under ``data_dir`` once.

    Generation is deterministic (seeded per image), so every machine gets the same files.
    """

    def __init__(self, data_dir: str, variant: str = "shapes", image_size: int | None = None,
                 train_per_class: int | None = None, val_per_class: int | None = None,
                 test_per_class: int | None = None, classes: list[str] | None = None, **kwargs) -> None:
        self.spec = spec_for(variant, classes, image_size=image_size, train_per_class=train_per_class,
                             val_per_class=val_per_class, test_per_class=test_per_class)
        if self.spec == spec_for(variant):
            folder = variant
        else:  # a customised spec gets its own folder, named by a hash of the spec
            folder = f"{variant}-{hashlib.sha1(self.spec.to_json().encode()).hexdigest()[:8]}"
        super().__init__(root=str(Path(data_dir).expanduser() / folder), **kwargs)

    def prepare_data(self) -> None:
        """Generate the dataset if it is not on disk yet (called on one process only)."""
        generate(self.spec, self.root)

    def _build(self, train_tf, eval_tf):
        self.prepare_data()
        return super()._build(train_tf, eval_tf)

