"""The GAN Lab view: toy 2-D distributions, the JS estimate, a ring run that learns, the figure."""

from __future__ import annotations

import csv
import functools
import math
from pathlib import Path

import lightning as L
import pytest
import torch

from visionlab.callbacks.epoch_seed import EpochSeedCallback
from visionlab.callbacks.gan_lab import JS_POINTS, GANLabView
from visionlab.cli.errors import find_user_error
from visionlab.data.toy2d import SHAPES, Toy2DDataModule, sample_toy2d
from visionlab.metrics.toy2d import js_divergence
from visionlab.modules.gan import GANModule
from visionlab.train import run


@pytest.mark.parametrize("shape", SHAPES)
def test_every_toy_distribution_fits_the_generators_range_and_is_labelled_by_mode(shape):
    points, labels = sample_toy2d(shape, 2000, seed=0)
    again, _ = sample_toy2d(shape, 2000, seed=0)
    assert points.shape == (2000, 2) and torch.equal(points, again)
    assert points.abs().max() < 1.0  # inside the generator's Tanh range
    data = Toy2DDataModule(shape=shape)
    assert sorted(labels.unique().tolist()) == list(range(data.num_classes))


def test_js_divergence_is_zero_for_the_same_points_ln2_for_disjoint_and_in_between_otherwise():
    ring, _ = sample_toy2d("ring", 4000, seed=0)
    other_ring, _ = sample_toy2d("ring", 4000, seed=1)
    assert js_divergence(ring, ring) == pytest.approx(0.0, abs=1e-7)
    assert js_divergence(ring, ring + 5.0) == pytest.approx(math.log(2), abs=1e-6)  # all in a border cell
    grid, _ = sample_toy2d("grid", 4000, seed=0)
    assert js_divergence(ring, other_ring) < 0.1 < js_divergence(ring, grid) < math.log(2)


def ring_gan() -> GANModule:
    torch.manual_seed(0)
    return GANModule(optimizer=functools.partial(torch.optim.Adam, betas=(0.5, 0.999)), generator="mlp",
                     discriminator="mlp", sample_shape=(2,), latent_dim=8, g_lr=1e-3, d_lr=1e-3,
                     num_classes=8, loss="lsgan")


@pytest.mark.slow
def test_a_short_ring_run_lowers_js_and_draws_the_view(tmp_path):
    data = Toy2DDataModule(shape="ring", n_train=2048, batch_size=32)
    model = ring_gan()
    data.setup()
    untrained = js_divergence(data.sample(JS_POINTS, 12345)[0], GANLabView._generate(model, JS_POINTS, 54321))
    trainer = L.Trainer(accelerator="cpu", max_epochs=6, logger=L.pytorch.loggers.CSVLogger(tmp_path),
                        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                        default_root_dir=str(tmp_path), callbacks=[EpochSeedCallback(0), GANLabView(3)])
    trainer.fit(model, datamodule=data)
    rows = list(csv.DictReader(next(tmp_path.rglob("metrics.csv")).open()))
    js = [float(row["val/js"]) for row in rows if row.get("val/js")]
    assert len(js) == 6 and js[-1] < untrained - 0.1, (untrained, js)
    assert sorted(p.name for p in (tmp_path / "gan_lab").iterdir()) == ["epoch_002.png", "epoch_005.png"]


QUIET = ["trainer.enable_progress_bar=false", "callbacks.model_summary=null", "logger=csv"]


def test_gan_toy2d_preset_runs_and_toy2d_refuses_images_options(make_cfg):
    def cfg(*overrides):
        return make_cfg(*QUIET, *overrides, tiny=False)

    small = cfg("experiment=gan_toy2d", "trainer.max_epochs=1", "data.n_train=256",
                "callbacks.gan_lab.view_every=1")
    run(small)
    assert (Path(small.paths.output_dir) / "gan_lab" / "epoch_000.png").is_file()
    for overrides, message in [
        (["data=toy2d"], "data=toy2d holds 2-D points for model=gan"),
        (["experiment=gan_toy2d", "augment=flip_crop"], "2-D points, not images: use augment=none"),
        (["experiment=gan_toy2d", "data.shape=spiral"], "'spiral' is not one of: ring, grid, line, moons"),
        (["model=gan", "data=toy2d"], "the dcgan architecture takes square images, not samples of shape"),
    ]:
        with pytest.raises(Exception) as raised:
            run(cfg(*overrides))
        assert message in str(find_user_error(raised.value))
