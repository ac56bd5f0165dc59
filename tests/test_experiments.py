"""A fast smoke run of every experiment preset (as lightning-hydra-template tests its own):
each composes, trains a step on offline data and writes what its config says."""

from __future__ import annotations

from pathlib import Path

import pytest

from visionlab.train import run

EXPERIMENTS = sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "experiment").glob("*.yaml"))
# Experiments whose data needs a user folder or a download run on shapes here.
CATS_DOGS = ("scratch", "augment_dropout", "fast_feature_extraction", "feature_extraction_augment",
             "fine_tune")
OFFLINE_DATA = {
    "course_flowers_vgg16": ["data=shapes_target", "~data.val_fraction"],
    "course_flowers_vgg16_feature_extraction": ["data=shapes_target", "~data.val_fraction"],
    "course_flowers_vgg16_fine_tune": ["data=shapes_target", "~data.val_fraction", "backbone.weights=null"],
    **{f"course_cats_dogs_{name}": ["data=shapes_target", "~data.binary"] for name in CATS_DOGS},
    **{name: ["data=shapes"] for name in ("vanilla_gan_mnist", "dcgan_mnist", "cgan_mnist")},
}
# Experiments on data other than images (the tiny-image overrides do not apply).
POINTS = {"gan_toy2d": ["data.n_train=64", "trainer.enable_progress_bar=false", "logger=csv"]}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_runs_a_fast_smoke_run(make_cfg, experiment):
    # debug=fast's one epoch (the tiny overrides' two epochs would take its place)
    shared = ["debug=fast", "trainer.max_epochs=1", "backbone.pretrained=false", "backbone.input_size=32",
              "data.batch_size=4", "callbacks.model_checkpoint=null"]
    cfg = make_cfg(f"experiment={experiment}", *OFFLINE_DATA.get(experiment, []), *POINTS.get(experiment, []),
                   *shared, tiny=experiment not in POINTS)
    value = run(cfg)
    if cfg.optimized_metric is None:
        assert value is None
    elif cfg.optimized_metric.endswith("psnr"):  # decibels
        assert 5.0 < value < 60.0
    else:
        assert 0.0 <= value <= 1.0
    assert (Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize("experiment, batch_size", [
    ("dcgan_shapes", 64), ("cgan_shapes", 64), ("gan_backbone_d_shapes", 64), ("lapgan_shapes", 64),
    ("srgan_shapes", 16), ("inpaint_shapes", 32)])
def test_gan_presets_take_a_users_folder_in_place_of_their_shapes(make_cfg, experiment, batch_size):
    from hydra.utils import get_class

    cfg = make_cfg(f"experiment={experiment}", "data=image_folder", "data.root=/somewhere", tiny=False)
    assert get_class(cfg.data._target_).__name__ == "ImageFolderDataModule"
    assert "variant" not in cfg.data and cfg.data.batch_size == batch_size  # the preset's batch size stays
