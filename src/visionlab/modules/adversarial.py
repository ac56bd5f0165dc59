"""What every adversarially trained module shares: a generator and a discriminator, each with
its own optimizer, stepped by hand (manual optimization), an optional EMA copy of the
generator, and image grids written to ``samples/`` and TensorBoard.

:class:`~visionlab.modules.gan.GANModule` (noise -> image), the image-to-image modules
(:mod:`~visionlab.modules.restoration`: super-resolution, inpainting) and
:class:`~visionlab.modules.lapgan.LAPGANModule` build on it.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn
from torchvision.transforms.functional import pil_to_tensor
from torchvision.utils import make_grid, save_image

from visionlab.config_targets import accepted_arguments
from visionlab.data_config import DataConfig
from visionlab.drawing import with_column_labels
from visionlab.errors import UserError
from visionlab.finetune.callback import FreezeScheduleCallback
from visionlab.finetune.param_groups import build_param_groups
from visionlab.finetune.plans import FreezePlan
from visionlab.modules.base import RunModule, freeze_plan_for
from visionlab.nets.backbone import Backbone
from visionlab.nets.gan import uses_backbone

OptimizerFactory = Callable[..., torch.optim.Optimizer]


def check_conditional(conditional: bool, num_classes: int) -> None:
    """A UserError when a conditional model is asked of data with fewer than two classes."""
    if conditional and num_classes < 2:
        raise UserError(f"model.conditional=true needs labelled data with at least 2 classes, the data "
                        f"has {num_classes}: use a labelled dataset or model.conditional=false")


def plain_arguments(arguments: dict) -> dict:
    """A constructor's ``locals()`` without ``self`` and the objects it was handed (optimizer,
    backbone, freeze plan): its plain hyperparameters, as the checkpoint stores them."""
    objects = ("self", "__class__", "optimizer", "kind_options", "backbone", "freeze_plan")
    return {k: v for k, v in arguments.items() if k not in objects}


class AdversarialModule(RunModule):
    """A generator (``self.generator``) against a discriminator (``self.discriminator``).

    ``optimizer`` is a partially applied optimizer class (the ``optimizer`` config group); the
    generator's gets ``g_lr``, the discriminator's ``d_lr``. Subclasses build both networks,
    then call :meth:`init_ema`, and write ``training_step`` with :meth:`update`. Checkpoints
    hold plain hyperparameters only (``weights_only=True``) and the module's ``kind``, which
    ``visionlab sample`` reads to rebuild the right module (:meth:`from_checkpoint`).
    """

    # The order configure_optimizers returns them in (read by the learning-rate logger).
    optimizer_names = ("generator", "discriminator")

    def __init__(self, optimizer: OptimizerFactory | None, ema_decay: float = 0.0) -> None:
        super().__init__()
        self.automatic_optimization = False
        if not 0.0 <= ema_decay < 1.0:
            raise UserError(f"model.ema_decay={ema_decay} must be in [0, 1) (0: no EMA generator)")
        self.optimizer_factory = optimizer
        self.generator_ema: nn.Module | None = None
        self.freeze_plan: FreezePlan | None = None

    def adopt_freeze_plan(self, discriminator: str, backbone: Backbone | None,
                          freeze_plan: FreezePlan | None) -> None:
        """For a backbone discriminator, keep ``freeze_plan`` (default: everything trains) and let
        it prepare ``backbone`` (it may truncate it): FreezeScheduleCallback then applies it epoch
        by epoch through ``self.freeze_plan`` and ``self.backbone``, as for the classifier."""
        if uses_backbone(discriminator) and backbone is not None:
            self.freeze_plan = freeze_plan or FreezePlan()
            self.freeze_plan.prepare(backbone)

    @property
    def backbone(self) -> Backbone:
        """The backbone (or projected) discriminator's network: what the freeze plan (``freeze``
        group) acts on."""
        return self.discriminator.backbone

    # --- the build protocol (visionlab.modules.base)

    @classmethod
    def needs_backbone(cls, model_cfg: DictConfig) -> bool:
        """Whether the run must build the ``backbone`` group's network for ``model_cfg`` (this
        module's config): here for a backbone discriminator; subclasses add their own uses (the
        restoration modules' perceptual loss)."""
        return uses_backbone(model_cfg.get("discriminator"))

    @classmethod
    def data_config(cls, cfg: DictConfig, backbone: Backbone | None) -> DataConfig:
        """Images at ``model.image_size`` with ``model.channels``, scaled to [-1, 1] (the generator's
        Tanh); 2-D point data ignores it."""
        channels = cfg.model.channels
        return DataConfig(channels, cfg.model.image_size, (0.5,) * channels, (0.5,) * channels)

    @classmethod
    def from_run(cls, cfg: DictConfig, datamodule, backbone: Backbone | None) -> AdversarialModule:
        """The configured module, given what its constructor asks for: the optimizer, the data's
        classes (conditional models) and sample shape (points), and, when :meth:`needs_backbone`
        says so, the ``backbone`` group's network and the ``freeze`` group's plan."""
        if cfg.trainer.get("gradient_clip_val"):
            raise UserError(f"trainer.gradient_clip_val={cfg.trainer.gradient_clip_val} does not apply to "
                            "the GAN (manual optimization): set model.grad_clip instead")
        available = {"optimizer": instantiate(cfg.optimizer), "num_classes": datamodule.num_classes,
                     "class_names": datamodule.class_names,
                     "sample_shape": getattr(datamodule, "sample_shape", None)}
        if backbone is not None:
            available |= {"backbone": backbone, "freeze_plan": freeze_plan_for(cfg, datamodule)}
        accepted = accepted_arguments(cls) or []
        return instantiate(cfg.model, **{k: v for k, v in available.items() if k in accepted})

    @classmethod
    def run_callbacks(cls, cfg: DictConfig) -> list[L.Callback]:
        """The freeze plan's callback for a backbone discriminator."""
        return [FreezeScheduleCallback()] if uses_backbone(cfg.model.get("discriminator")) else []

    @classmethod
    def from_checkpoint(cls, state: dict, checkpoint: Path, run_config) -> AdversarialModule:
        """The module of ``state`` with its generator's weights (and EMA copy), in eval mode;
        nothing of its discriminator is rebuilt (:meth:`sampling_hparams`)."""
        model = cls.for_sampling(dict(state.get("hyper_parameters", {})))
        weights = {k: v for k, v in state["state_dict"].items() if not k.startswith("discriminator.")}
        missing = [k for k in model.load_state_dict(weights, strict=False).missing_keys
                   if not k.startswith("discriminator.")]
        if missing:
            raise UserError(f"{checkpoint} lacks generator weights ({', '.join(missing[:3])}): it is not a "
                            "complete checkpoint")
        return model.eval()

    def init_ema(self) -> None:
        """Make the EMA copy of ``self.generator`` when ``hparams.ema_decay`` > 0."""
        if self.hparams.ema_decay > 0:
            self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)

    def adopt_weights(self, averaged: bool = True) -> None:
        """For use after training: sample from the EMA generator (``averaged``, when the run kept one)
        or from the trained one (the EMA copy is dropped)."""
        if not averaged:
            self.generator_ema = None

    @property
    def sampling_generator(self) -> nn.Module:
        """The generator that draws samples and is measured: the EMA copy when there is one."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    def discriminator_parameters(self) -> Iterable:
        """The discriminator's parameters; a backbone discriminator's in a group per backbone stage
        (at ``d_lr`` times the plan's ``lr_mult``) and one for its head, as the classifier's: every
        parameter is in the optimizer from the start, and frozen ones, without gradients, are skipped."""
        if self.freeze_plan is None:
            return self.discriminator.parameters()
        return build_param_groups(self.backbone, self.discriminator.head, self.freeze_plan, self.hparams.d_lr)

    def configure_optimizers(self):
        """One optimizer for the generator (at ``g_lr``), one for the discriminator (at ``d_lr``)."""
        if self.optimizer_factory is None:
            raise UserError(f"this {self.kind} was rebuilt for sampling and has no optimizer (nor, for some, "
                            "its discriminator): resume training with train.py ckpt_path=<checkpoint>")
        try:
            g_opt = self.optimizer_factory(params=self.generator.parameters(), lr=self.hparams.g_lr)
            d_opt = self.optimizer_factory(params=self.discriminator_parameters(), lr=self.hparams.d_lr)
        except ValueError as err:
            raise UserError(f"the optimizer rejects its settings: {err}: fix model.g_lr / model.d_lr or "
                            "that optimizer.* value") from err
        return [g_opt, d_opt]

    def update(self, optimizer, loss: torch.Tensor, network: nn.Module, name: str) -> None:
        """One optimizer step on ``loss``, the gradient norm clipped to ``hparams.grad_clip``;
        a non-finite loss stops the run before any weight changes."""
        if not torch.isfinite(loss):
            raise UserError(f"the {name} loss became {loss.item()} at step {self.global_step} (epoch "
                            f"{self.current_epoch}): lower model.g_lr / model.d_lr or set model.grad_clip; "
                            "the last checkpoint written before it is intact")
        optimizer.zero_grad()
        self.manual_backward(loss)
        if self.hparams.grad_clip:
            torch.nn.utils.clip_grad_norm_(network.parameters(), self.hparams.grad_clip)
        optimizer.step()

    @property
    def generator_steps(self) -> int:
        """Generator updates so far: one per batch, after ``d_steps`` discriminator updates."""
        return self.global_step // (self.hparams.get("d_steps", 1) + 1)

    @torch.no_grad()
    def update_ema(self) -> None:
        """``ema <- decay * ema + (1 - decay) * generator`` (buffers copied).

        The decay warms up as ``min(ema_decay, (1 + n) / (10 + n))`` after n generator steps, so
        the average does not drag the random initial weights along for thousands of steps.
        """
        if self.generator_ema is None:
            return
        updates = self.generator_steps
        decay = min(self.hparams.ema_decay, (1 + updates) / (10 + updates))
        for ema, current in zip(self.generator_ema.parameters(), self.generator.parameters(), strict=True):
            ema.lerp_(current, 1.0 - decay)
        for ema, current in zip(self.generator_ema.buffers(), self.generator.buffers(), strict=True):
            ema.copy_(current)

    @contextlib.contextmanager
    def sampling_mode(self) -> Iterator[nn.Module]:
        """The sampling generator in eval mode, without gradients, for the ``with`` block."""
        generator = self.sampling_generator
        training = generator.training
        generator.eval()
        try:
            with torch.no_grad():
                yield generator
        finally:
            generator.train(training)

    @property
    def conditional(self) -> bool:
        """Whether the module takes class labels (``hparams.conditional``; image-to-image: never)."""
        return bool(self.hparams.get("conditional", False))

    def register_fixed_noise(self, num_samples: int, latent_dim: int, classes: int) -> None:
        """The noise (and, with ``classes``, labels: one grid row per class) that every epoch's
        sample grid draws, ``num_samples`` of it in ``grid_columns`` columns; buffers, so every
        checkpoint keeps them."""
        rows = classes or max(1, int(math.sqrt(num_samples)))
        self.grid_columns = math.ceil(num_samples / rows)
        seeded = torch.Generator().manual_seed(0)
        noise = torch.randn(rows * self.grid_columns, latent_dim, generator=seeded)
        self.register_buffer("fixed_noise", noise)
        labels = torch.arange(rows).repeat_interleave(self.grid_columns) if classes else None
        self.register_buffer("fixed_labels", labels)

    def write_grid(self, images: torch.Tensor, columns: int, tag: str, filename: str,
                   column_names: tuple[str, ...] = ()) -> None:
        """A grid of ``images`` (N, C, H, W in [-1, 1]) in ``columns`` columns, saved to
        ``<run>/samples/<filename>`` and to every logger that shows images (TensorBoard's *Images*
        tab, under ``tag``); with ``column_names``, a strip above the grid names each column.
        Rank 0 only."""
        if not self.trainer.is_global_zero:
            return
        grid = make_grid((images * 0.5 + 0.5).float().clamp(0, 1).cpu(), nrow=columns, padding=2)
        if column_names:
            grid = pil_to_tensor(with_column_labels(grid, list(column_names))).float() / 255
        out = Path(self.trainer.default_root_dir) / "samples" / filename
        out.parent.mkdir(parents=True, exist_ok=True)
        save_image(grid, out)
        for logger in self.trainer.loggers:
            add_image = getattr(getattr(logger, "experiment", None), "add_image", None)
            if add_image is not None:
                add_image(tag, grid, self.current_epoch)

    @classmethod
    def sampling_hparams(cls, hparams: dict) -> dict:
        """A checkpoint's hyperparameters, changed so that only what sampling needs is rebuilt
        (no pretrained backbone, no measuring network)."""
        return hparams

    @classmethod
    def for_sampling(cls, hparams: dict) -> AdversarialModule:
        """The module of a checkpoint's ``hparams``, built to load its generator's weights into."""
        return cls(optimizer=None, **cls.sampling_hparams(dict(hparams)))
