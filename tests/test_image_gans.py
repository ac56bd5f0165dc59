"""SRGAN, LAPGAN and inpainting: their data paths, losses, metrics, checkpoints, `visionlab sample`
on a user's images, and bad input."""

from __future__ import annotations

import csv
import functools
import math
import re
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import CSVLogger
from PIL import Image
from tiny import CLASSES, TensorDataModule

from visionlab.callbacks.epoch_seed import EpochSeedCallback
from visionlab.errors import UserError
from visionlab.metrics.restoration import RestorationScores
from visionlab.modules.gan import GANModule
from visionlab.modules.gan_losses import LOSSES
from visionlab.modules.inpaint import InpaintModule, mean_fill
from visionlab.modules.lapgan import LAPGANModule
from visionlab.modules.restoration import pixel_loss
from visionlab.modules.srgan import SRGANModule
from visionlab.nets.factory import create_backbone
from visionlab.nets.masks import MASKS, make_masks
from visionlab.nets.perceptual import PerceptualFeatures
from visionlab.nets.pyramid import laplacian_pyramid, reconstruct, up
from visionlab.nets.srresnet import bicubic_downscale, bicubic_upscale
from visionlab.train import run

ADAM = functools.partial(torch.optim.Adam, betas=(0.5, 0.999))
NAMES = [f"c{i}" for i in range(CLASSES)]


def srgan(**options) -> SRGANModule:
    torch.manual_seed(0)
    return SRGANModule(ADAM, **{"image_size": 32, "blocks": 1, "g_width": 8, "d_width": 8, "num_samples": 2,
                                **options})


def inpainter(**options) -> InpaintModule:
    torch.manual_seed(0)
    return InpaintModule(ADAM, **{"image_size": 32, "depth": 3, "g_width": 8, "d_width": 8, "num_samples": 2,
                                  **options})


def lapgan(**options) -> LAPGANModule:
    torch.manual_seed(0)
    return LAPGANModule(ADAM, **{"image_size": 32, "levels": 3, "width": 8, "detail_width": 8,
                                 "latent_dim": 8, "num_samples": 4, "num_classes": CLASSES,
                                 "class_names": NAMES, **options})


def fit(model, root: Path, epochs: int = 1, callbacks=()) -> L.Trainer:
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=epochs, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=str(root), logger=CSVLogger(root),
                        callbacks=[EpochSeedCallback(0), *callbacks])
    data = TensorDataModule(n_train=16, n_val=8)
    trainer.fit(model, datamodule=data)
    return trainer


def logged(root: Path) -> dict[str, float]:
    """The last logged value of every metric in a CSVLogger run under ``root``."""
    values: dict[str, float] = {}
    for row in csv.DictReader(next(root.rglob("metrics.csv")).open()):
        values.update({k: float(v) for k, v in row.items() if v})
    return values


# --- SRGAN ---

@pytest.mark.parametrize("scale", [2, 4])
def test_srgan_upscales_by_scale_and_starts_as_bicubic(scale):
    model = srgan(scale=scale).eval()
    low = bicubic_downscale(torch.rand(2, 3, 32, 32) * 2 - 1, scale)
    assert low.shape[-1] == 32 // scale
    out = model(low)
    assert out.shape == (2, 3, 32, 32)
    # the last layer starts at zero: the network's first output is bicubic upscaling exactly
    torch.testing.assert_close(out, bicubic_upscale(low, scale))
    assert model(torch.zeros(1, 3, 5, 7)).shape == (1, 3, 5 * scale, 7 * scale)  # any input size


def test_pixel_loss_equals_its_formula_on_the_whole_image_and_on_a_region():
    g = torch.Generator().manual_seed(0)
    images, targets = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    region = torch.zeros(2, 1, 8, 8)
    region[:, :, 2:6, 2:6] = 1
    assert torch.allclose(pixel_loss("mse", images, targets), F.mse_loss(images, targets))
    assert torch.allclose(pixel_loss("l1", images, targets), F.l1_loss(images, targets))
    hole = region.bool().expand_as(images)
    assert torch.allclose(pixel_loss("mse", images, targets, region), ((images - targets)[hole] ** 2).mean())
    assert torch.allclose(pixel_loss("l1", images, targets, region), (images - targets)[hole].abs().mean())
    # SRGAN's pixel loss on a fixed batch: the mean squared difference of G(downscaled) and the batch
    model = srgan(scale=2)
    (low,), region = model.degrade(targets * 2 - 1, seed=None)
    assert region is None and torch.equal(low, bicubic_downscale(targets * 2 - 1, 2))


def test_perceptual_loss_is_zero_for_identical_images_positive_otherwise_and_reaches_the_images():
    features = PerceptualFeatures(create_backbone("shapes_net", source="custom", pretrained=True), "block1")
    images = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    assert features.loss(images, images.detach()).item() == 0.0
    loss = features.loss(images, images.detach().flip(-1))
    assert loss.item() > 0
    loss.backward()
    assert images.grad.abs().sum() > 0  # the generator learns through it
    assert all(p.grad is None for p in features.parameters())  # the feature network stays fixed
    assert not features.train().training  # and in eval mode


def test_srgan_with_a_backbone_discriminator_and_perceptual_loss_from_the_config(make_cfg):
    cfg = make_cfg("model=srgan", "model.image_size=32", "model.scale=4", "model.blocks=1", "model.g_width=8",
                   "model.discriminator=backbone", "model.perceptual_weight=0.1",
                   "model.perceptual_layer=block2",
                   "freeze=feature_extraction", "backbone.input_size=32", "trainer.max_epochs=1")
    psnr = run(cfg)
    metrics = logged(Path(cfg.paths.output_dir))
    assert psnr == pytest.approx(metrics["val/psnr"]) and 5 < psnr < 60
    assert {"val/ssim", "val/psnr_bicubic", "val/ssim_bicubic", "train/perceptual_loss"} <= set(metrics)


# --- LAPGAN ---

def test_laplacian_pyramid_rebuilds_the_image_and_is_lapgans_data_path():
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    coarsest, details = laplacian_pyramid(images, 3)
    assert coarsest.shape[-1] == 8 and [d.shape[-1] for d in details] == [16, 32]
    torch.testing.assert_close(reconstruct(coarsest, details), images, atol=1e-6, rtol=0)
    batches = lapgan().level_batches(images)
    assert batches[0][0] is None and torch.equal(batches[0][1], coarsest)
    for (_, coarser), (condition, _) in zip(batches[:-1], batches[1:], strict=True):
        torch.testing.assert_close(condition, up(coarser))  # conditioned on the upscaled coarser level
    torch.testing.assert_close(batches[-1][1], images, atol=1e-6, rtol=0)  # the finest is the real image


def test_lapgan_sampling_runs_the_pyramid_to_the_final_size():
    model = lapgan(conditional=True).eval()
    pyramid = model.generator.pyramid(torch.randn(5, 8), torch.tensor([0, 1, 2, 0, 1]))
    assert [p.shape for p in pyramid] == [(5, 3, s, s) for s in (8, 16, 32)]
    assert model.draw(4, torch.zeros(4, dtype=torch.long)).shape == (4, 3, 32, 32)


def test_lapgan_progressive_schedule_trains_one_level_after_the_other(tmp_path):
    model = lapgan(schedule="progressive")
    changed = []

    class LevelWatch(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            self.before = [[p.detach().clone() for p in level.parameters()]
                           for level in pl_module.generator.levels]

        def on_train_epoch_end(self, trainer, pl_module):
            changed.append([any(not torch.equal(a, b) for a, b in zip(old, level.parameters(), strict=True))
                            for old, level in zip(self.before, pl_module.generator.levels, strict=True)])

    fit(model, tmp_path, epochs=3, callbacks=[LevelWatch()])
    assert changed == [[True, False, False], [False, True, False], [False, False, True]]
    samples = tmp_path / "samples"
    grids = sorted(p.relative_to(samples).as_posix() for p in samples.rglob("*.png"))
    assert "epoch_002.png" in grids and "level_0/epoch_000.png" in grids and "level_2/epoch_002.png" in grids


# --- Inpainting ---

@pytest.mark.parametrize("kind", MASKS)
def test_masks_are_reproducible_from_the_seed_and_inpainting_copies_the_visible_pixels(kind):
    masks = make_masks(kind, 4, 32, seed=7)
    assert torch.equal(masks, make_masks(kind, 4, 32, seed=7))
    assert set(masks.unique().tolist()) <= {0.0, 1.0} and 0.02 < masks.mean() < 0.6
    if kind != "center":
        assert not torch.equal(masks, make_masks(kind, 4, 32, seed=8))
    images = torch.rand(4, 3, 32, 32) * 2 - 1
    filled = inpainter()(images, masks)
    visible = (masks == 0).expand_as(images)
    assert torch.equal(filled[visible], images[visible])
    assert not torch.equal(filled[~visible], images[~visible])


def test_a_hole_discriminator_judges_only_the_filled_pixels():
    model = inpainter(d_input="hole").eval()
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    hole = make_masks("random_boxes", 2, 32, seed=3)
    elsewhere = images + (1 - hole) * torch.rand_like(images)  # the visible part changed
    torch.testing.assert_close(model.judge(elsewhere, hole), model.judge(images, hole))
    whole = inpainter(d_input="image").eval()
    assert not torch.allclose(whole.judge(elsewhere, hole), whole.judge(images, hole))


def test_mean_fill_paints_each_hole_with_the_mean_visible_colour():
    images = torch.rand(2, 3, 16, 16)
    mask = make_masks("center", 2, 16, seed=0)
    filled = mean_fill(images, mask)
    for i in range(2):
        for c in range(3):
            expected = images[i, c][mask[i, 0] == 0].mean()
            assert torch.allclose(filled[i, c][mask[i, 0] == 1], expected.expand(64))


def test_restoration_scores_count_only_the_region():
    targets = torch.rand(2, 3, 32, 32) * 1.6 - 0.8
    images = targets + 0.1  # 0.05 on the [0, 1] scale
    region = make_masks("center", 2, 32, seed=0)
    scores = RestorationScores()
    scores.update(images, targets)
    assert scores.compute()["psnr"] == pytest.approx(10 * math.log10(1 / 0.05**2), abs=1e-3)
    hole_only = RestorationScores()
    elsewhere = images + (1 - region) * torch.rand_like(images)  # changed outside the hole only
    hole_only.update(elsewhere, targets, region)
    assert hole_only.compute()["psnr"] == pytest.approx(scores.compute()["psnr"], abs=1e-3)
    perfect = RestorationScores()
    perfect.update(targets, targets)
    assert perfect.compute() == {"psnr": math.inf, "ssim": pytest.approx(1.0)}

@pytest.mark.numerics
def test_restoration_scores_are_float32_under_mixed_precision():
    # smooth images, as real ones are: half precision cancels their small variances in SSIM
    g = torch.Generator().manual_seed(0)
    ramp = torch.linspace(-0.2, 0.6, 32).view(1, 1, 1, 32).expand(2, 3, 32, 32)
    targets = ramp + 0.02 * torch.randn(2, 3, 32, 32, generator=g)
    images = targets + 0.02 * torch.randn(2, 3, 32, 32, generator=g)
    full, mixed = RestorationScores(), RestorationScores()
    full.update(images, targets)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as trainer.precision=bf16-mixed validates
        mixed.update(images, targets)
    assert mixed.compute() == pytest.approx(full.compute(), abs=1e-4)


# --- All three: training, checkpoints, `visionlab sample` ---

@pytest.mark.parametrize("make", [srgan, inpainter, lapgan], ids=["srgan", "inpaint", "lapgan"])
def test_checkpoints_round_trip_with_weights_only_and_rebuild_the_generator(tmp_path, make):
    from visionlab.inference.checkpoint import load

    model = make()
    trainer = fit(model, tmp_path)
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    state = torch.load(tmp_path / "model.ckpt", weights_only=True)
    assert state["visionlab_module"] == model.kind and len(state["optimizer_states"]) == 2
    rebuilt = load(tmp_path / "model.ckpt")
    model.eval()
    if model.kind == "lapgan":
        from visionlab.cli.main import main

        z = torch.randn(3, 8)
        torch.manual_seed(1)
        expected = model(z)
        torch.manual_seed(1)
        torch.testing.assert_close(rebuilt(z), expected)
        assert {"train/d_loss", "train/g_loss"} <= set(logged(tmp_path))
        main(["sample", str(tmp_path / "model.ckpt"), "--n", "3", "--out", str(tmp_path / "drawn")])
        assert Image.open(tmp_path / "drawn" / "sample_0002.png").size == (32, 32)
        return
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    inputs, _ = model.degrade(images, seed=0)
    torch.testing.assert_close(rebuilt(*inputs), model(*inputs))
    metrics = logged(tmp_path)
    baseline, region = model.baseline_name, model.region_name  # inpainting: the hole alone, named so
    assert region == ("hole_" if model.kind == "inpaint" else "")
    names = ("psnr", "ssim", f"psnr_{baseline}", f"ssim_{baseline}")
    assert {f"val/{region}{name}" for name in names} <= set(metrics)
    rows = Image.open(tmp_path / "samples" / "epoch_000.png").convert("L")
    columns = len(model.panel_names)
    assert rows.width == 2 + columns * (32 + 2) and (rows.height - 12 - 2) % (32 + 2) == 0  # + a 12 px strip
    header = torch.tensor(list(rows.crop((0, 0, rows.width, 12)).getdata()))
    assert header.max() > 128  # the column names are written on the black strip above the rows


def test_sample_upscales_and_inpaints_a_users_images(tmp_path, capsys):
    from visionlab.cli.main import main

    folder = tmp_path / "mine"
    (folder / "more").mkdir(parents=True)
    Image.new("RGB", (12, 10), (200, 30, 30)).save(folder / "wide.png")
    Image.new("L", (6, 9), 90).save(folder / "more" / "wide.png")  # the same name in a subfolder
    Image.fromarray((torch.rand(32, 32, 3) * 255).byte().numpy()).save(folder / "noise.png")
    (folder / "notes.txt").write_text("not an image")
    for make, name in ((srgan, "sr"), (inpainter, "fill")):
        fit(make(), tmp_path / name).save_checkpoint(tmp_path / f"{name}.ckpt")
    main(["sample", str(tmp_path / "sr.ckpt"), "--input", str(folder), "--out", str(tmp_path / "up")])
    assert "3 image(s) upscaled: 3 file(s)" in capsys.readouterr().out
    assert Image.open(tmp_path / "up" / "wide_x4.png").size == (48, 40)
    assert Image.open(tmp_path / "up" / "more" / "wide_x4.png").size == (24, 36)
    main(["sample", str(tmp_path / "fill.ckpt"), "--input", str(folder / "noise.png"), "--mask",
          "random_boxes", "--out", str(tmp_path / "filled")])
    original = torch.tensor(list(Image.open(folder / "noise.png").getdata()))
    filled = torch.tensor(list(Image.open(tmp_path / "filled" / "noise_inpainted.png").getdata()))
    hole = make_masks("random_boxes", 1, 32, seed=0).flatten().bool()
    assert torch.equal(filled[~hole], original[~hole]) and not torch.equal(filled[hole], original[hole])


@pytest.mark.parametrize("build, args, message", [
    (srgan, [], "it restores images rather than drawing them: give --input"),
    (srgan, ["--input", "EMPTY"], "holds no readable images"),
    (lapgan, ["--input", "EMPTY"], "--input is for checkpoints that restore images (srgan, inpaint)"),
    (inpainter, ["--input", "EMPTY", "--mask", "blob"], "--mask='blob' is not one of: center, random_boxes"),
])
def test_sample_refuses_what_a_checkpoint_cannot_do(tmp_path, capsys, build, args, message):
    from visionlab.cli.main import main

    (tmp_path / "EMPTY").mkdir()
    (tmp_path / "EMPTY" / "readme.txt").write_text("no images here")
    model = build()
    model.on_save_checkpoint(state := {})
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams), **state},
               tmp_path / "m.ckpt")
    with pytest.raises(SystemExit) as exit_info:
        main(["sample", str(tmp_path / "m.ckpt"), *[str(tmp_path / a) if a == "EMPTY" else a for a in args]])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("build, message", [
    (lambda: srgan(image_size=30, scale=4), "model.scale=4 does not divide model.image_size=30"),
    (lambda: srgan(scale=3), "model.scale=3 is not one of: 2, 4, 8"),
    (lambda: lapgan(image_size=36), "model.levels=3 does not fit model.image_size=36"),
    (lambda: lapgan(levels=5), "down to an even coarsest size of at least 8 px; use 2 to 3 levels for 32 px"),
    (lambda: lapgan(schedule="sideways"), "model.schedule='sideways' is not one of: joint, progressive"),
    (lambda: inpainter(mask="blob"), "model.mask='blob' is not one of: center, random_boxes, free_form"),
    (lambda: inpainter(depth=4), "model.depth=4 does not fit model.image_size=32"),
    (lambda: inpainter(d_input="center"), "model.d_input='center' is not one of: image, hole"),
    (lambda: srgan(perceptual_weight=1.0, perceptual_layer="block1"), "needs a feature network"),
    (lambda: srgan(perceptual_weight=1.0, perceptual_layer="block9",
                   backbone=create_backbone("shapes_net", source="custom", pretrained=False)),
     "model.perceptual_layer='block9' is not a layer of shapes_net; its layers: block1, block2"),
    (lambda: srgan(loss="wgan_gp"), "model.loss=wgan_gp needs a gradient penalty, which model=srgan"),
])
def test_bad_settings_are_one_line_user_errors(build, message):
    with pytest.raises(UserError, match=re.escape(message)):
        build()


ADVERSARIAL_BUILDERS = {"gan": lambda **o: GANModule(ADAM, width=8, latent_dim=8, num_samples=4, **o),
                        "lapgan": lapgan, "srgan": srgan, "inpaint": inpainter}


@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("kind", sorted(ADVERSARIAL_BUILDERS))
def test_every_module_takes_the_losses_it_can_compute_and_refuses_the_others(kind, loss):
    import visionlab.modules  # noqa: F401  (every built-in kind registered)
    from visionlab.modules.base import MODEL_KINDS

    adds_penalty = kind == "gan"  # the only module whose discriminator step adds WGAN-GP's penalty
    if LOSSES[loss].needs_gradient_penalty and not adds_penalty:
        with pytest.raises(UserError, match=f"loss={loss} needs a gradient penalty, which model={kind}"):
            ADVERSARIAL_BUILDERS[kind](loss=loss)
        return
    model = ADVERSARIAL_BUILDERS[kind](loss=loss)
    assert isinstance(model, MODEL_KINDS[kind]) and model.adversarial_loss.name == loss
