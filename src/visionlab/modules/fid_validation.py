"""``val/fid``, ``val/kid`` and precision / recall / density / coverage for modules that draw
images from noise (GAN, LAPGAN)."""

from __future__ import annotations

import torch


class FIDValidation:
    """A LightningModule mixin: every ``hparams.fid_every`` epochs (0: never), the validation
    images and as many drawn by :meth:`draw` (the module's, from its EMA generator) give
    ``val/fid``, ``val/kid``, ``val/precision``, ``val/recall``, ``val/density`` and
    ``val/coverage`` in the feature space of ``hparams.fid_features``
    (:mod:`visionlab.metrics.generative`), logged with the numbers of images behind them
    (``val/real_samples``, ``val/generated_samples``). The validation images are the same every
    epoch, so their features are computed at the first evaluation and kept. The feature network
    is built at fit time and kept out of the checkpoint."""

    def draw(self, n: int, labels: torch.Tensor | None) -> torch.Tensor:
        """``n`` generated images in [-1, 1] (class ``labels`` for conditional models)."""
        raise NotImplementedError

    def setup(self, stage: str) -> None:
        """Build the FID/KID feature network when it will be used."""
        if stage == "fit" and self.hparams.fid_every and getattr(self, "_generative", None) is None:
            from visionlab.metrics.generative import GenerativeMetrics, feature_network

            # Not a registered submodule: the measuring network is no part of the model's state.
            metrics = GenerativeMetrics(feature_network(self.hparams.fid_features), keep_real=True)
            object.__setattr__(self, "_generative", metrics)

    # Whether the real features of the whole validation set are held (after the first evaluation).
    _real_complete = False

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
        with self.sampling_mode():
            metrics.update(self.draw(len(real), labels), real=False)

    def on_validation_epoch_end(self) -> None:
        """Log ``val/fid``, ``val/kid`` and the PRDC scores on FID epochs."""
        if not self._fid_due():
            return
        scores = self._generative.compute()
        self._generative.reset()  # the generated images' features; the real ones are kept
        self._real_complete = True
        self.log_dict({f"val/{name}": value for name, value in scores.items()}, sync_dist=False)
