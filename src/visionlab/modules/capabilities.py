"""What a trained module serves, as the Python calls a user makes on it: ``predict`` (classify),
``draw`` (draw images from noise) and ``restore`` (image to image). The CLI's ``predict``,
``sample`` and ``export`` are front ends over the same calls, so both give the same numbers.

A model kind takes the mixin of each capability it serves and lists the capability in its
``capabilities`` (:class:`~visionlab.modules.base.RunModule`), which its checkpoints record; the
front ends check that declaration, never the kind's name. Each mixin says what the class must
define for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from visionlab.data.image_inputs import Images, image_list, preprocessed_batches, single_image
from visionlab.data.transforms import MatchChannels
from visionlab.data.tta import averaged_log_probabilities, tta_views
from visionlab.data_config import DataConfig
from visionlab.errors import UserError

DEFAULT_TOP_K = 3  # classes per image when not asked: fewer if the model has fewer


@contextlib.contextmanager
def evaluating(module: nn.Module) -> Iterator[None]:
    """``module`` in eval mode and without gradients for the block, in its own mode again after it
    (a call during training, e.g. the GAN Lab view's, leaves training as it was)."""
    training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(training)


@dataclass
class Prediction:
    """One image's top-k classes and probabilities, most probable first; ``source`` is the image's
    path, or its position among the images given."""

    source: Path | int
    classes: list[str]
    probabilities: list[float]


class Classifies:
    """Capability ``classify`` (and ``export``): class probabilities for images.

    The class defines ``forward(images) -> logits`` on preprocessed images ``(N, C, H, W)``,
    :attr:`input_config` (the preprocessing: size, channels, mean, std) and, for ``export``,
    :meth:`export_network`; :attr:`class_names` reads ``hparams.class_names`` unless overridden.
    """

    @property
    def class_names(self) -> list[str]:
        """The classes the model predicts, in output order."""
        return list(self.hparams.class_names)

    @property
    def input_config(self) -> DataConfig:
        """The input the network expects: what images are resized and normalised to."""
        raise NotImplementedError

    def export_network(self) -> nn.Module:
        """The network as plain modules, preprocessed images in, logits out (what is exported)."""
        raise NotImplementedError

    def probabilities(self, images: Images, tta: str = "none", batch_size: int = 64,
                      progress: bool = False) -> torch.Tensor:
        """``(N, classes)`` class probabilities (on the CPU) for images given as paths, PIL images or
        tensors (:mod:`visionlab.data.image_inputs`), preprocessed as ``visionlab predict`` does;
        with ``tta`` (``flip``, ``flip_crop``) the softmax averaged over views of each image;
        ``progress`` shows a progress bar."""
        from rich.progress import Progress

        views, items = tta_views(tta), image_list(images)
        batches = []
        with evaluating(self), Progress(transient=True, disable=not progress) as bar:
            task = bar.add_task("predicting", total=len(items))
            for x in preprocessed_batches(items, self.input_config, batch_size):
                batches.append(averaged_log_probabilities(self, x.to(self.device), views).exp().cpu())
                bar.advance(task, len(x))
        return torch.cat(batches) if batches else torch.empty(0, len(self.class_names))

    def predict(self, images: Images, top_k: int | None = None, tta: str = "none", batch_size: int = 64,
                progress: bool = False) -> list[Prediction]:
        """The ``top_k`` most probable classes of each image with their probabilities (default: 3, or
        every class of a model with fewer), in the order the images were given."""
        names = self.class_names
        top_k = min(DEFAULT_TOP_K, len(names)) if top_k is None else top_k
        if not 1 <= top_k <= len(names):
            raise UserError(f"--top-k {top_k} must be between 1 and the model's {len(names)} classes")
        items = image_list(images)
        top = self.probabilities(items, tta, batch_size, progress).topk(top_k, dim=-1)
        sources = [Path(item) if isinstance(item, (str, Path)) else index for index, item in enumerate(items)]
        return [Prediction(source, [names[i] for i in indices], values)
                for source, values, indices in zip(sources, top.values.tolist(), top.indices.tolist(),
                                                   strict=True)]


class Draws:
    """Capability ``draw``: samples from noise.

    The class defines ``forward(z, labels)``, returning images in [-1, 1] (or points), and has
    ``hparams.latent_dim``, ``hparams.class_names`` and ``conditional``; ``hparams.sample_shape``,
    when it has one, tells images ``(C, H, W)`` from points.
    """

    @property
    def latent_size(self) -> int:
        """The length of a noise vector."""
        return int(self.hparams.latent_dim)

    def noise(self, n: int, seed: int | None = None) -> torch.Tensor:
        """``(n, latent_size)`` standard normal noise on the module's device (drawn on the CPU from
        ``seed``, so a seed gives the same noise on any device; without one, from torch's RNG)."""
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        return torch.randn(n, self.latent_size, generator=generator).to(self.device)

    def class_labels(self, n: int, labels: int | str | Sequence | torch.Tensor | None) -> torch.Tensor | None:
        """The class of each of ``n`` samples: ``labels`` (a class name or index for all, or one per
        sample), or every class in turn; None for an unconditional model."""
        if not self.conditional:
            if labels is not None:
                raise UserError("labels need a conditional GAN (trained with model.conditional=true)")
            return None
        names = list(self.hparams.class_names)
        if labels is None:
            return torch.arange(n) % len(names)
        if isinstance(labels, (int, str)):
            labels = [labels] * n
        indices = [class_index(names, label) for label in (labels.tolist() if torch.is_tensor(labels)
                                                           else labels)]
        if len(indices) != n:
            raise UserError(f"{len(indices)} labels for {n} samples: give one label, or one per sample")
        return torch.tensor(indices)

    def draw(self, n: int, labels: int | str | Sequence | torch.Tensor | None = None,
             seed: int | None = None) -> torch.Tensor:
        """``n`` samples from the (EMA) generator, on the CPU: images ``(n, C, H, W)`` in [0, 1], or
        points as the data holds them. ``labels`` (conditional models): a class name or index, one per
        sample, or None for every class in turn. The same ``seed`` gives the same samples."""
        z = self.noise(n, seed)
        classes = self.class_labels(n, labels)
        with evaluating(self), seeded(seed, self.device):  # any noise the generator draws itself too
            samples = self(z, None if classes is None else classes.to(self.device)).float().cpu()
        shape = self.hparams.get("sample_shape")
        return samples if shape is not None and len(shape) != 3 else (samples * 0.5 + 0.5).clamp(0, 1)


@contextlib.contextmanager
def seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Torch's RNG seeded with ``seed`` for the block and restored after it (nothing when None)."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def class_index(names: list[str], label: int | str) -> int:
    """The index of ``label`` (a class name, or an index as a number or digits) among ``names``."""
    if isinstance(label, str) and label in names:
        return names.index(label)
    if str(label).isdigit() and int(label) < len(names):
        return int(label)
    raise UserError(f"label {label!r} is not a class of this GAN: use one of {', '.join(names)} (or 0 to "
                    f"{len(names) - 1})")


class Restores:
    """Capability ``restore``: image-to-image (SRGAN upscales, inpainting fills holes).

    The class defines ``restore_outputs(image, mask, seed)`` for one image ``(1, C, H, W)`` in
    [-1, 1], returning named images in [-1, 1], and :meth:`restore_size`; it has
    ``hparams.channels``.
    """

    restore_verb = "restored"  # what the messages call it ("upscaled", "inpainted")

    def restore_size(self) -> int | None:
        """The side images are resized to before restoring (None: kept at their own size)."""
        return None

    def restore_outputs(self, image: torch.Tensor, mask: str | None, seed: int) -> dict[str, torch.Tensor]:
        """``{name: image}`` for one ``image`` ``(1, C, H, W)`` in [-1, 1] (the name is the suffix of
        the file ``visionlab sample --input`` writes)."""
        raise NotImplementedError

    def restore_input(self, image) -> torch.Tensor:
        """One image (path, PIL image or ``(C, H, W)`` tensor in [0, 1] or uint8) as ``(1, C, H, W)``
        in [-1, 1] with the model's channels, at :meth:`restore_size`."""
        from torchvision.transforms.functional import pil_to_tensor, resize

        image = single_image(image)
        if not torch.is_tensor(image):
            image = pil_to_tensor(image)
        x = image.float() / 255 if image.dtype == torch.uint8 else image.float()
        x = MatchChannels(self.hparams.channels)(x)
        size = self.restore_size()
        if size is not None:
            x = resize(x, [size, size], antialias=True)
        return x.unsqueeze(0).to(self.device) * 2 - 1

    def restore(self, images: Images, mask: str | None = None, seed: int = 0
                ) -> list[dict[str, torch.Tensor]]:
        """Each image restored: a dict of named ``(C, H, W)`` images in [0, 1] on the CPU (SRGAN:
        ``x<scale>``; inpainting: ``masked`` and ``inpainted``, image i's holes of kind ``mask``, the
        model's own by default, drawn from ``seed + i``)."""
        restored = []
        with evaluating(self):
            for index, image in enumerate(image_list(images)):
                outputs = self.restore_outputs(self.restore_input(image), mask, seed + index)
                restored.append({name: (value[0] * 0.5 + 0.5).clamp(0, 1).float().cpu()
                                 for name, value in outputs.items()})
        return restored
