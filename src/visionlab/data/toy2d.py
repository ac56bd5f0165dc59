"""2-D point distributions for the GAN Lab view: ``ring``, ``grid``, ``line`` and ``moons``.

The classic toy targets of GAN papers and of the GAN Lab demo the course links: small
enough that a GAN trains in seconds on a CPU, and plotted in full, so mode collapse and the
discriminator's decision surface are visible. Every point lies inside [-1, 1]² (the
generator's Tanh range); each point's label is the mode (or moon, or line segment) it
belongs to, so a conditional GAN can be asked for one mode.
"""

from __future__ import annotations

import math

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from visionlab.data.loading import train_loader
from visionlab.data_config import DataConfig
from visionlab.errors import UserError


def _ring(n: int, g: torch.Generator, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """8 Gaussians evenly spaced on a circle of radius 0.7."""
    labels = torch.randint(0, 8, (n,), generator=g)
    angle = labels.float() * (2 * math.pi / 8)
    centres = 0.7 * torch.stack([angle.cos(), angle.sin()], dim=1)
    return centres + noise * torch.randn(n, 2, generator=g), labels


def _grid(n: int, g: torch.Generator, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """25 Gaussians on a 5 x 5 grid spanning [-0.7, 0.7]²."""
    labels = torch.randint(0, 25, (n,), generator=g)
    steps = torch.linspace(-0.7, 0.7, 5)
    centres = torch.stack([steps[labels % 5], steps[labels // 5]], dim=1)
    return centres + noise * torch.randn(n, 2, generator=g), labels


def _line(n: int, g: torch.Generator, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """A diagonal segment from (-0.7, -0.7) to (0.7, 0.7), labelled by which quarter of it."""
    t = torch.rand(n, generator=g)
    points = (t * 1.4 - 0.7).unsqueeze(1).expand(n, 2) + noise * torch.randn(n, 2, generator=g)
    return points, (t * 4).long().clamp(max=3)


def _moons(n: int, g: torch.Generator, noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved half circles (scikit-learn's ``make_moons``), scaled into [-0.8, 0.8]²."""
    labels = torch.randint(0, 2, (n,), generator=g)
    angle = torch.rand(n, generator=g) * math.pi
    upper = torch.stack([angle.cos(), angle.sin()], dim=1)
    lower = torch.stack([1 - angle.cos(), 0.5 - angle.sin()], dim=1)
    points = torch.where(labels.unsqueeze(1) == 0, upper, lower)
    points = (points - torch.tensor([0.5, 0.25])) * 0.55
    return points + noise * torch.randn(n, 2, generator=g), labels


SAMPLERS = {"ring": _ring, "grid": _grid, "line": _line, "moons": _moons}
CLASSES = {"ring": 8, "grid": 25, "line": 4, "moons": 2}
SHAPES = tuple(SAMPLERS)


def check_shape(shape: str) -> str:
    """``shape``, or a UserError listing the distributions."""
    if shape not in SAMPLERS:
        raise UserError(f"data.shape={shape!r} is not one of: {', '.join(SHAPES)}")
    return shape


def sample_toy2d(shape: str, n: int, seed: int, noise: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points ``(n, 2)`` of distribution ``shape`` and their mode labels ``(n,)``, seeded."""
    return SAMPLERS[check_shape(shape)](n, torch.Generator().manual_seed(seed), noise)


class Toy2DDataModule(L.LightningDataModule):
    """Points of one toy distribution for ``model=gan`` (MLP generator and discriminator).

    ``n_train`` points are drawn once from ``seed``; the validation split is drawn from
    ``seed + 1``. :meth:`sample` draws fresh points for measuring a generator against the
    true distribution (``val/js``). ``data_config`` and ``augment`` are the image options
    train.py hands every datamodule: points have no image format, and an augmentation is an
    error.
    """

    sample_shape = (2,)

    def __init__(self, shape: str = "ring", n_train: int = 4096, n_val: int = 1024, noise: float = 0.05,
                 batch_size: int = 128, seed: int | None = 0,
                 data_config: DataConfig | None = None, augment=None) -> None:
        super().__init__()
        check_shape(shape)
        if augment is not None and getattr(augment, "func", augment).__name__ != "no_augment":
            raise UserError("data=toy2d holds 2-D points, not images: use augment=none")
        self.shape, self.n_train, self.n_val, self.noise = shape, n_train, n_val, noise
        self.batch_size, self.seed = batch_size, seed
        self.class_names = [f"{shape}{i}" for i in range(CLASSES[shape])]
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None

    @property
    def num_classes(self) -> int:
        """Modes of the distribution (the labels of a conditional GAN)."""
        return len(self.class_names)

    def sample(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` fresh points and labels of this distribution."""
        return sample_toy2d(self.shape, n, seed, self.noise)

    def setup(self, stage: str | None = None) -> None:
        """Draw the training and validation points (once)."""
        if self.train_set is None:
            seed = self.seed or 0
            self.train_set = TensorDataset(*self.sample(self.n_train, seed))
            self.val_set = TensorDataset(*self.sample(self.n_val, seed + 1))

    def train_dataloader(self) -> DataLoader:
        """Shuffled batches, in an order that depends only on (seed, epoch)."""
        return train_loader(self.train_set, self.seed, self.trainer, batch_size=self.batch_size)

    def val_dataloader(self) -> DataLoader:
        """Validation points in a fixed order."""
        return DataLoader(self.val_set, batch_size=self.batch_size)
