"""Classification Accuracy Score (Ravuri & Vinyals 2019): does a conditional generator's data teach
a classifier? The course's "generate training data for other models", measured in one call.

:func:`classification_accuracy_score` draws ``per_class`` images of every class from a conditional
GAN checkpoint, trains the project's classifier on them (the default job, or the ``overrides``
given: backbone, freeze plan, epochs...) and tests it on the real test split of the data the GAN
was trained on; then trains the same classifier on as many *real* training images per class and
tests it the same way. Both datasets are written as ImageFolder trees at the GAN's resolution,
sharing one real validation and test split, under ``out``::

    out/real/{val,test}/<class>/*.png          the GAN run's real validation and test images
    out/real/train/<class>/*.png               per_class real training images per class
    out/generated/train/<class>/*.png          per_class generated images per class
    out/generated/{val,test} -> ../real/...    (links)
    out/{generated,real}/run/                  the two classifier runs
    out/cas.json                               both test accuracies and the settings
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import open_dict

from visionlab.errors import UserError
from visionlab.inference.checkpoint import composed_run_config, load, with_overrides
from visionlab.inference.sampling import write_class_tree, write_generated_tree
from visionlab.modules.base import module_class


@dataclass
class CASResult:
    """Test accuracy on the real test split of the classifier trained on generated images (the
    CAS) and of the one trained on real images, with the settings behind them."""

    generated_accuracy: float
    real_accuracy: float
    per_class: int
    classes: int
    test_images: int
    overrides: list[str]

    @property
    def ratio(self) -> float:
        """CAS relative to the real-data classifier."""
        return self.generated_accuracy / self.real_accuracy if self.real_accuracy else float("nan")


def stacked(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """A dataset's images and labels as two tensors."""
    images, labels = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
    return torch.stack(images), torch.as_tensor(labels)


def as_unit_range(images: torch.Tensor) -> torch.Tensor:
    """Images a run loads in [-1, 1] (as its GAN sees them) in [0, 1], to write."""
    return (images * 0.5 + 0.5).clamp(0, 1)


def first_per_class(labels: torch.Tensor, per_class: int, classes: int) -> torch.Tensor:
    """Indices of the first ``per_class`` examples of every class."""
    return torch.cat([torch.nonzero(labels == c).flatten()[:per_class] for c in range(classes)])


def train_classifier(conf_dir: Path, root: Path, overrides: list[str], seed: int) -> float:
    """Test accuracy of the classifier the ``overrides`` compose, trained on the tree at ``root``."""
    from visionlab.train import run

    with initialize_config_dir(config_dir=str(conf_dir.resolve()), version_base="1.3"):
        data = ["data=image_folder", f"data.root={root}", f"seed={seed}", "optimized_metric=test/acc"]
        cfg = compose(config_name="train", overrides=[*data, *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(root / "run")
    return float(run(cfg))


def classification_accuracy_score(checkpoint: Path, conf_dir: Path, out: Path, per_class: int | None = None,
                                  overrides: list[str] = (), seed: int = 0) -> CASResult:
    """The CAS of ``checkpoint`` beside the same classifier trained on real images (module docstring)."""
    generator = load(checkpoint)
    if not generator.hparams.get("conditional"):
        raise UserError(f"{checkpoint} is an unconditional GAN: the CAS needs images of a class on demand "
                        "(train with model.conditional=true, e.g. experiment=cgan_shapes)")
    cfg = (with_overrides(generator.run_config, [], conf_dir) if generator.run_config is not None
           else composed_run_config(checkpoint, conf_dir, []))
    data = instantiate(cfg.data, data_config=module_class(cfg.model).data_config(cfg, None), augment=None)
    data.prepare_data()
    data.setup("fit")
    data.setup("test")
    if data.test_set is None:
        raise UserError(f"the data of {checkpoint}'s run has no test split to score the classifiers on")
    names, classes = list(data.class_names), len(data.class_names)
    if names != list(generator.hparams.class_names):
        raise UserError(f"the run's data now has the classes {names}, and the GAN was trained on "
                        f"{list(generator.hparams.class_names)}: restore the data it was trained on")
    train_x, train_y = stacked(data.train_set)
    fewest = int(torch.bincount(train_y, minlength=classes).min())
    per_class = per_class or fewest
    if per_class > fewest:
        raise UserError(f"--per-class {per_class}: the real training split has only {fewest} images of "
                        f"its smallest class, and the real-data classifier needs as many: use --per-class "
                        f"{fewest}")
    real = out / "real"
    for split, dataset in (("val", data.val_set), ("test", data.test_set)):
        images, labels = stacked(dataset)
        write_class_tree(as_unit_range(images), labels, names, real / split)
    chosen = first_per_class(train_y, per_class, classes)
    write_class_tree(as_unit_range(train_x[chosen]), train_y[chosen], names, real / "train")
    generated = out / "generated"
    write_generated_tree(generator, per_class, seed, generated / "train")  # as `sample --per-class`
    for split in ("val", "test"):
        (generated / split).symlink_to(Path("..") / "real" / split, target_is_directory=True)
    print(f"{per_class} generated and {per_class} real training images per class of {classes} written to "
          f"{out}; training the classifier on each", flush=True)
    result = CASResult(train_classifier(conf_dir, generated, list(overrides), seed),
                       train_classifier(conf_dir, real, list(overrides), seed),
                       per_class, classes, len(data.test_set), list(overrides))
    (out / "cas.json").write_text(json.dumps({**asdict(result), "ratio": result.ratio,
                                              "checkpoint": str(checkpoint)}, indent=2))
    return result
