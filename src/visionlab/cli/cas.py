"""``visionlab cas``: the Classification Accuracy Score of a conditional GAN, beside real data."""

from __future__ import annotations

import shutil
from pathlib import Path

from visionlab.inference.cas import classification_accuracy_score


def cmd_cas(checkpoint: Path, conf_dir: Path, out: Path, per_class: int | None, overrides: list[str],
            seed: int) -> None:
    """Run the CAS into ``out`` (an earlier CAS there is replaced: cli/checks.py allowed it) and
    print the two accuracies."""
    if out.exists():
        shutil.rmtree(out)
    result = classification_accuracy_score(checkpoint, conf_dir, out, per_class, overrides, seed)
    print(f"CAS: trained on {result.per_class} generated images per class of {result.classes}, the "
          f"classifier scores {result.generated_accuracy:.4f} on the {result.test_images} real test images; "
          f"trained on as many real ones, {result.real_accuracy:.4f} (ratio {result.ratio:.2f}; chance "
          f"{1 / result.classes:.3f}); written to {out / 'cas.json'}")
