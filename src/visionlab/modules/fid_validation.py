"""``val/fid``, ``val/kid``, precision / recall / density / coverage and the class metrics for
modules that draw images from noise (GAN, LAPGAN)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from visionlab.checkpoint_header import require, run_dir_of
from visionlab.errors import UserError
from visionlab.metrics.class_coverage import ClassCoverage, ClassifierJudge, LinearProbe

log = logging.getLogger(__name__)

# The tag of the training wall time so far (validation left out), logged at every FID evaluation: runs
# compared at equal time (TensorBoard's x-axis, `visionlab compare --at-time`).
TRAIN_TIME = "time/train_seconds"
# Real training images the class metrics' probe is fitted on, at most: their features cost about
# as much as 1000 training steps' worth of images on a CPU (5 s for shapes_net), and more add
# little (validation accuracy on shapes_mono 0.994 / 1.000 from 1000 / 4000, shapes_plain 0.944 / 0.950).
PROBE_IMAGES = 1000


def check_class_metrics(choice: bool | str, num_classes: int, eval_classifier: str | None = None) -> bool:
    """``model.class_metrics`` resolved: ``auto`` is on for data with 2+ classes; ``true`` and a
    ``model.eval_classifier`` need them (and the classifier needs the metrics on)."""
    if choice not in ("auto", True, False):
        raise UserError(f"model.class_metrics={choice!r} must be auto, true or false")
    for asked, setting in ((choice is True, "model.class_metrics=true"),
                           (bool(eval_classifier), f"model.eval_classifier={eval_classifier}")):
        if asked and num_classes < 2:
            raise UserError(f"{setting} needs labelled data with 2+ classes, and this data has "
                            f"{num_classes}: remove it (the class metrics are for labelled data)")
    if eval_classifier and choice is False:
        raise UserError(f"model.eval_classifier={eval_classifier} judges the class metrics, which "
                        "model.class_metrics=false turns off: set model.class_metrics=auto or remove "
                        "the classifier")
    return num_classes >= 2 if choice == "auto" else choice


def load_eval_classifier(checkpoint: str, class_names: list[str]) -> ClassifierJudge:
    """The classifier of ``model.eval_classifier`` (a checkpoint that serves ``classify``) as a judge,
    rebuilt as it was trained, with its averaged weights when the run kept them; a checkpoint written
    before checkpoints held their run's config gets it from its run folder (``.hydra/config.yaml``).
    A UserError for a missing file, a checkpoint that does not classify, or classes other than the
    data's (``class_names``, same order)."""
    from visionlab.modules.base import load_module

    path = Path(checkpoint)
    if not path.is_file():
        raise UserError(f"model.eval_classifier={checkpoint}: no such file; give the .ckpt of a visionlab "
                        "classifier trained on this data (e.g. <run>/checkpoints/best.ckpt)")
    require(path, ("classify",), "train model.eval_classifier=...")

    def saved_config():
        saved = run_dir_of(path) / ".hydra" / "config.yaml"
        if not saved.is_file():
            raise UserError(f"model.eval_classifier={checkpoint}: no {saved}; a checkpoint written before "
                            "checkpoints held their run's config must sit in its run directory")
        return OmegaConf.load(saved)

    model = load_module(path, run_config=saved_config)
    predicts = list(model.class_names)
    if predicts != list(class_names):
        raise UserError(f"model.eval_classifier={checkpoint} predicts the classes {', '.join(predicts)}, the "
                        f"data has {', '.join(class_names)} (in this order): give a classifier trained on "
                        "this data's classes")
    return ClassifierJudge(model)


class FIDValidation:
    """A LightningModule mixin: every ``hparams.fid_every`` epochs (0: never), the validation
    images and as many drawn by :meth:`fake_images` (the module's, from its EMA generator) give
    ``val/fid``, ``val/kid``, ``val/precision``, ``val/recall``, ``val/density`` and
    ``val/coverage`` in the feature space of ``hparams.fid_features``
    (:mod:`visionlab.metrics.generative`), logged with the numbers of images behind them
    (``val/real_samples``, ``val/generated_samples``). The validation images are the same every
    epoch, so their features are computed at the first evaluation and kept. With
    ``hparams.class_metrics`` (labelled data), also ``val/class_coverage``,
    ``val/rarest_class_share``, ``val/recognised`` and, for a conditional model,
    ``val/conditional_accuracy`` (:mod:`visionlab.metrics.class_coverage`), judged by a linear
    probe fitted at fit start on the real training images' features, or by the classifier
    checkpoint ``hparams.eval_classifier`` when one is given. For a conditional model, also
    ``val/class_fid/<class>``: the Fréchet distance between each class's real validation images
    and the images drawn for that class. The feature network and the judge are built at fit time
    and kept out of the checkpoint."""

    @classmethod
    def check_run_config(cls, cfg: DictConfig) -> None:
        """A ``model.fid_features`` that names no feature network, refused before the run starts."""
        if cfg.model.get("fid_every"):
            from visionlab.metrics.generative import check_feature_spec

            check_feature_spec(cfg.model.fid_features)
        super().check_run_config(cfg)

    def fake_images(self, n: int, labels: torch.Tensor | None) -> torch.Tensor:
        """``n`` generated images in [-1, 1] (class ``labels`` for conditional models)."""
        raise NotImplementedError

    def setup(self, stage: str) -> None:
        """Build the FID/KID feature network when it will be used, and the class metrics' probe."""
        if stage == "fit" and self.hparams.fid_every and getattr(self, "_generative", None) is None:
            from visionlab.metrics.generative import GenerativeMetrics, feature_network

            # Not registered submodules: the measuring instruments are no part of the model's state.
            metrics = GenerativeMetrics(feature_network(self.hparams.fid_features), keep_real=True)
            object.__setattr__(self, "_generative", metrics)
            coverage = self._class_judge() if self.hparams.get("class_metrics") else None
            object.__setattr__(self, "_coverage", coverage)

    def _labelled_features(self, loader, limit: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Features and labels of up to ``limit`` images of ``loader``."""
        features, labels, seen = [], [], 0
        for images, targets in loader:
            features.append(self._generative.extract(images[:limit - seen]))
            labels.append(targets[:limit - seen])
            seen += len(labels[-1])
            if seen >= limit:
                break
        return torch.cat(features), torch.cat(labels)

    def _class_judge(self):
        """The class metrics for this run and what labels the generated images
        (:mod:`visionlab.metrics.class_coverage`): the classifier ``hparams.eval_classifier``, or a
        linear probe fitted on the real training images' features; its validation accuracy is logged."""
        data, classes = self.trainer.datamodule, self.hparams.num_classes
        if self.hparams.get("eval_classifier"):
            judge = load_eval_classifier(self.hparams.eval_classifier, self.hparams.class_names)
            judged = [(judge(images).argmax(-1), labels) for images, labels in data.val_dataloader()]
            predicted, val_y = (torch.cat(parts) for parts in zip(*judged, strict=True))
            what = f"the classifier {self.hparams.eval_classifier}"
        else:
            val_x, val_y = self._labelled_features(data.val_dataloader(), PROBE_IMAGES)
            train_x, train_y = self._labelled_features(data.train_dataloader(), PROBE_IMAGES)
            judge = LinearProbe(train_x.shape[1], classes).fit(train_x, train_y)
            predicted = judge(val_x).argmax(-1)
            what = f"a linear probe on {self.hparams.fid_features} features of {len(train_y)} training images"
        accuracy = float((predicted == val_y).float().mean())
        log.info("class metrics: %s classifies the %d validation images with accuracy %.3f", what, len(val_y),
                 accuracy)
        object.__setattr__(self, "_judge", judge)
        return ClassCoverage(torch.bincount(val_y, minlength=classes).float() / len(val_y))

    # Whether the real features of the whole validation set are held (after the first evaluation).
    _real_complete = False
    _coverage = None  # the class metrics, when on (set up at fit start)
    # Conditional models: the real images' labels and the classes drawn this evaluation (per-class FID).
    _real_labels: list | None = None
    _drawn_labels: list | None = None

    # The training wall time so far without validation (TRAIN_TIME), counted from the first training
    # epoch's start; kept in checkpoints, so a resumed run goes on counting.
    _train_seconds = 0.0
    _since: float | None = None

    def on_train_epoch_start(self) -> None:
        """Start (or go on) counting training time."""
        if self._since is None:
            self._since = time.perf_counter()

    def on_validation_epoch_start(self) -> None:
        """Stop counting training time while validating (the FID evaluation included)."""
        if self._since is not None:
            self._train_seconds += time.perf_counter() - self._since
            self._since = None

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Record the training time so far beside the module's own records."""
        super().on_save_checkpoint(checkpoint)
        checkpoint["visionlab_train_seconds"] = self._train_seconds

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """A resumed run counts on from the time its checkpoint recorded."""
        super().on_load_checkpoint(checkpoint)
        self._train_seconds = float(checkpoint.get("visionlab_train_seconds", 0.0))

    def _fid_due(self) -> bool:
        every = self.hparams.fid_every
        return bool(every) and not self.trainer.sanity_checking and (self.current_epoch + 1) % every == 0

    def validation_step(self, batch, batch_idx: int) -> None:
        """On FID epochs: add the real batch and as many generated images to the FID/KID state."""
        if not self._fid_due():
            return
        real, labels = batch
        metrics = self._generative.to(self.device)
        if not self._real_complete:
            metrics.update(real, real=True)
        labels = labels if self.conditional else None
        if labels is not None:
            if self._real_labels is None:
                self._real_labels, self._drawn_labels = [], []
            if not self._real_complete:
                self._real_labels.append(labels.cpu())
            self._drawn_labels.append(labels.cpu())
        with self.sampling_mode():
            generated = self.fake_images(len(real), labels)
        features = metrics.update(generated, real=False)
        if self._coverage is not None:
            judge = self._judge.to(self.device)
            probabilities = judge(features) if isinstance(judge, LinearProbe) else judge(generated)
            self._coverage.update(probabilities, labels)

    def on_validation_epoch_end(self) -> None:
        """Log ``val/fid``, ``val/kid``, the PRDC scores and :data:`TRAIN_TIME` on FID epochs; training
        time counts on from here."""
        if not self.trainer.sanity_checking:
            self._since = time.perf_counter()
        if not self._fid_due():
            return
        scores = self._generative.compute()
        if self._drawn_labels:
            names, drawn = self.hparams.class_names, torch.cat(self._drawn_labels)
            per_class = self._generative.class_fids(torch.cat(self._real_labels), drawn)
            scores |= {f"class_fid/{names[c]}": value for c, value in per_class.items()}
            self._drawn_labels = []
        self._generative.reset()  # the generated images' features; the real ones are kept
        self._real_complete = True
        if self._coverage is not None:
            scores |= self._coverage.compute()
            self._coverage.reset()
        self.log_dict({f"val/{name}": value for name, value in scores.items()}, sync_dist=False)
        self.log(TRAIN_TIME, self._train_seconds, sync_dist=False)
