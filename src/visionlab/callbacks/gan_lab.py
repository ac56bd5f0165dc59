"""The GAN Lab view of a GAN on 2-D points (``data=toy2d``): ``val/js`` every epoch and, every
``view_every`` epochs, a figure of what the discriminator believes and where the generator
is being pushed, in TensorBoard (*Images*, ``gan_lab/view``) and in ``<run>/gan_lab/``.

The figure shows, over the plane: the discriminator's belief that a point is real
(``sigmoid`` of its logit) as a heatmap, the real points, the generated points, and on a
subset of those, arrows along minus the gradient of the generator's loss with respect to
each point, the direction the generator's next update moves its samples (GAN Lab's
"generator gradients").
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch

from visionlab.metrics.toy2d import EXTENT, js_divergence

JS_POINTS = 4096  # points per side of the val/js estimate
VIEW_POINTS = 512  # points drawn in the figure
ARROWS = 64


class GANLabView(L.Callback):
    """``val/js`` (a grid estimate of the Jensen-Shannon divergence between the true distribution
    and the generator's, in nats) every epoch; the decision-surface figure every ``view_every``
    epochs. Needs a datamodule with ``sample(n, seed)`` (:class:`~visionlab.data.toy2d.Toy2DDataModule`)."""

    def __init__(self, view_every: int = 5, resolution: int = 64) -> None:
        self.view_every = view_every
        self.resolution = resolution

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Log ``val/js``; on view epochs draw the figure (rank 0 writes it)."""
        real, _ = trainer.datamodule.sample(JS_POINTS, seed=12345)
        fake = self._generate(pl_module, JS_POINTS, seed=54321)
        pl_module.log("val/js", js_divergence(real, fake), on_epoch=True, prog_bar=True)
        epoch = trainer.current_epoch
        if self.view_every and (epoch + 1) % self.view_every == 0 and trainer.is_global_zero:
            figure = self.figure(pl_module, real[:VIEW_POINTS], epoch)
            out = Path(trainer.default_root_dir) / "gan_lab" / f"epoch_{epoch:03d}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            figure.savefig(out, dpi=100)
            for logger in trainer.loggers:
                add_figure = getattr(getattr(logger, "experiment", None), "add_figure", None)
                if add_figure is not None:
                    add_figure("gan_lab/view", figure, epoch, close=False)
            import matplotlib.pyplot as plt

            plt.close(figure)

    @staticmethod
    def _generate(pl_module, n: int, seed: int) -> torch.Tensor:
        """``n`` points from the (EMA) generator for seeded noise (labels cycling over the classes)."""
        return pl_module.draw(n, seed=seed)

    def figure(self, pl_module, real: torch.Tensor, epoch: int):
        """The matplotlib figure: D's belief heatmap, real and fake points, generator-gradient arrows."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        device, n = pl_module.device, self.resolution
        axis = torch.linspace(-EXTENT, EXTENT, n)
        grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), dim=-1).view(-1, 2).to(device)
        discriminator = pl_module.discriminator
        training = discriminator.training
        discriminator.eval()
        labels = None
        if pl_module.conditional:  # a conditional D's belief depends on the label: show class 0's
            labels = torch.zeros(len(grid), dtype=torch.long, device=device)
        with torch.no_grad():
            belief = torch.sigmoid(discriminator(grid, labels).float()).view(n, n).cpu()
        fake = self._generate(pl_module, VIEW_POINTS, seed=epoch).to(device).requires_grad_(True)
        fake_labels = (torch.arange(len(fake), device=device) % pl_module.hparams.num_classes
                       if pl_module.conditional else None)
        loss = pl_module.adversarial_loss.generator(discriminator(fake, fake_labels))
        (gradient,) = torch.autograd.grad(loss, fake)
        discriminator.train(training)
        fake, step = fake.detach().cpu().numpy(), -gradient.float().cpu().numpy()[:ARROWS]
        length = np.linalg.norm(step, axis=1, keepdims=True).max() + 1e-12

        figure, ax = plt.subplots(figsize=(5.5, 5))
        mesh = ax.imshow(belief.numpy(), origin="lower", extent=(-EXTENT, EXTENT, -EXTENT, EXTENT),
                         cmap="PiYG", vmin=0, vmax=1)
        figure.colorbar(mesh, ax=ax, label="D(x): belief that x is real")
        ax.scatter(real[:, 0], real[:, 1], s=4, c="#1a9850", label="real")
        ax.scatter(fake[:, 0], fake[:, 1], s=4, c="#762a83", label="generated")
        ax.quiver(fake[:ARROWS, 0], fake[:ARROWS, 1], step[:, 0] / length, step[:, 1] / length,
                  angles="xy", scale_units="xy", scale=5, width=0.004, color="black")
        ax.set(xlim=(-EXTENT, EXTENT), ylim=(-EXTENT, EXTENT), aspect="equal",
               title=f"epoch {epoch}: D's belief, real and generated points, generator gradients")
        ax.title.set_fontsize(8)
        ax.legend(loc="upper right", fontsize=7)
        figure.tight_layout()
        return figure
