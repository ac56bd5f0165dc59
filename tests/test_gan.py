"""The GAN module: who updates when, the losses' formulas, EMA, resume, sample grids, bad input."""

from __future__ import annotations

import csv
import functools
import json
import math
import time
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import CSVLogger
from tiny import CLASSES, TensorDataModule, tiny_model, tiny_trainer

from visionlab.callbacks.epoch_seed import EpochSeedCallback
from visionlab.errors import UserError
from visionlab.modules.gan import GANModule
from visionlab.modules.gan_losses import LOSSES, gradient_penalty
from visionlab.nets.gan import build_gan_nets
from visionlab.train import run


def tiny_gan(**options) -> GANModule:
    """A DCGAN at 32 px with 8-channel layers and 16-d noise, seeded."""
    torch.manual_seed(0)
    options = {"width": 8, "latent_dim": 16, "num_classes": CLASSES, "num_samples": 9,
               "class_names": [f"c{i}" for i in range(CLASSES)],
               "optimizer": functools.partial(torch.optim.Adam, betas=(0.5, 0.999)), **options}
    return GANModule(**options)


def fit(model: GANModule, root: Path, epochs: int = 1, ckpt_path: str | None = None, callbacks=(),
        **kwargs) -> L.Trainer:
    kwargs.setdefault("logger", False)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=epochs,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(root),
                        deterministic=True, callbacks=[EpochSeedCallback(0), *callbacks], **kwargs)
    trainer.fit(model, datamodule=TensorDataModule(n_train=16, n_val=8), ckpt_path=ckpt_path)
    return trainer


def record_updates(model: GANModule) -> list[tuple[str, bool, bool]]:
    """Wraps the module's optimizer step: (network, D changed, G changed) for every update."""
    updates = []
    original = model.update

    def snapshot():
        return ([p.detach().clone() for p in model.discriminator.parameters()],
                [p.detach().clone() for p in model.generator.parameters()])

    def changed(before, after):
        return any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))

    def update(optimizer, loss, network, name):
        d_before, g_before = snapshot()
        original(optimizer, loss, network, name)
        d_after, g_after = snapshot()
        updates.append((name, changed(d_before, d_after), changed(g_before, g_after)))

    model.update = update
    return updates


def test_discriminator_phase_moves_only_d_and_generator_phase_only_g(tmp_path):
    model = tiny_gan()
    updates = record_updates(model)
    fit(model, tmp_path, max_steps=2)  # one batch: one D and one G step
    assert updates == [("discriminator", True, False), ("generator", False, True)]


@pytest.mark.parametrize("d_steps", [1, 3])
def test_d_steps_discriminator_updates_per_generator_update(tmp_path, d_steps):
    model = tiny_gan(d_steps=d_steps)
    updates = record_updates(model)
    trainer = fit(model, tmp_path, epochs=2, logger=CSVLogger(tmp_path))  # 2 batches an epoch
    names = [name for name, _, _ in updates]
    assert names == (["discriminator"] * d_steps + ["generator"]) * 4
    assert trainer.global_step == 4 * (d_steps + 1)  # global_step (and max_steps) count every update
    rows = list(csv.DictReader(next(tmp_path.rglob("metrics.csv")).open()))
    logged = sorted({int(row["step"]) for row in rows if row.get("train/g_loss")})
    assert logged == [1, 3]  # the logged axis counts batches: generator steps, whatever d_steps is


def test_losses_equal_their_formulas():
    real, fake = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([-0.5, 1.5, 0.0])
    sig = torch.sigmoid
    assert LOSSES["bce"]().discriminator(real, fake) == pytest.approx(
        float(-(sig(real).log().mean() + (1 - sig(fake)).log().mean())), rel=1e-6)
    assert LOSSES["bce"]().discriminator(real, fake, real_target=0.9) == pytest.approx(
        float(F.binary_cross_entropy(sig(real), torch.full_like(real, 0.9))
              - (1 - sig(fake)).log().mean()), rel=1e-6)
    assert LOSSES["bce"]().generator(fake) == pytest.approx(float(-sig(fake).log().mean()), rel=1e-6)
    assert LOSSES["hinge"]().discriminator(real, fake) == pytest.approx(
        float(torch.clamp(1 - real, min=0).mean() + torch.clamp(1 + fake, min=0).mean()))
    assert LOSSES["hinge"]().generator(fake) == pytest.approx(float(-fake.mean()))
    assert LOSSES["lsgan"]().discriminator(real, fake) == pytest.approx(
        float(0.5 * ((real - 1) ** 2).mean() + 0.5 * (fake**2).mean()))
    assert LOSSES["lsgan"]().generator(fake) == pytest.approx(float(0.5 * ((fake - 1) ** 2).mean()))
    assert LOSSES["wgan_gp"]().discriminator(real, fake) == pytest.approx(float(fake.mean() - real.mean()))
    assert LOSSES["wgan_gp"]().generator(fake) == pytest.approx(float(-fake.mean()))


def test_gradient_penalty_is_zero_for_a_unit_gradient_linear_critic_and_positive_otherwise():
    torch.manual_seed(0)
    real, fake = torch.randn(8, 3, 4, 4), torch.randn(8, 3, 4, 4)
    w = torch.randn(48)
    unit = w / w.norm()
    assert gradient_penalty(lambda x: x.flatten(1) @ unit, real, fake) == pytest.approx(0.0, abs=1e-10)
    assert gradient_penalty(lambda x: x.flatten(1) @ (3 * unit), real, fake) == pytest.approx(4.0, rel=1e-5)


@pytest.mark.parametrize("loss", ["bce", "hinge", "lsgan", "wgan_gp"])
def test_every_loss_trains_a_finite_step_and_ema_trails_the_generator(tmp_path, loss):
    model = tiny_gan(loss=loss, ema_decay=0.9, conditional=True, spectral_norm=loss == "hinge",
                     diffaugment=["color", "translation", "cutout"] if loss == "bce" else [])
    fit(model, tmp_path)
    ema = dict(model.generator_ema.named_parameters())
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(ema[name], p) for name, p in model.generator.named_parameters())


def test_diffaugment_shifts_cuts_and_recolours_each_image_differentiably():
    from visionlab.modules.diffaugment import diff_augment

    torch.manual_seed(0)
    dot = torch.zeros(16, 1, 32, 32)
    dot[:, :, 16, 16] = 1.0
    shifted = diff_augment(dot, ["translation"])
    assert torch.equal(shifted.sum(dim=(1, 2, 3)), torch.ones(16))  # moved, not lost: 1/8 of 32 px at most
    where = shifted.flatten(1).argmax(dim=1)
    assert ((where // 32 - 16).abs() <= 4).all() and ((where % 32 - 16).abs() <= 4).all()
    assert len(set(where.tolist())) > 1  # each image its own shift
    holes = (diff_augment(torch.ones(16, 3, 32, 32), ["cutout"]) == 0).sum(dim=(1, 2, 3)) / 3
    assert (holes > 0).all() and (holes <= 16 * 16).all()
    images = torch.rand(4, 3, 8, 8, requires_grad=True)
    recoloured = diff_augment(images, ["color", "translation", "cutout"])
    recoloured.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_ema_warms_up_then_averages_at_the_configured_decay():
    model = tiny_gan(ema_decay=0.99)
    ema, current = model.generator_ema, model.generator
    with torch.no_grad():
        for p in current.parameters():
            p.add_(1.0)
    before = [p.clone() for p in ema.parameters()]
    model.update_ema()  # first update: decay (1 + 0) / (10 + 0) = 0.1
    for old, new, target in zip(before, ema.parameters(), current.parameters(), strict=True):
        torch.testing.assert_close(new, 0.1 * old + 0.9 * target)


def test_resume_equals_the_uninterrupted_run_and_checkpoints_load_weights_only(tmp_path):
    straight = tiny_gan(ema_decay=0.5)
    fit(straight, tmp_path / "straight", epochs=2)
    interrupted = tiny_gan(ema_decay=0.5)
    trainer = fit(interrupted, tmp_path / "first", epochs=1)
    trainer.save_checkpoint(tmp_path / "epoch1.ckpt")
    checkpoint = torch.load(tmp_path / "epoch1.ckpt", weights_only=True)
    assert len(checkpoint["optimizer_states"]) == 2 and "fixed_noise" in checkpoint["state_dict"]
    assert any(key.startswith("generator_ema.") for key in checkpoint["state_dict"])
    resumed = tiny_gan(ema_decay=0.5)
    fit(resumed, tmp_path / "resumed", epochs=2, ckpt_path=str(tmp_path / "epoch1.ckpt"))
    for key, value in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key


def test_conditional_grid_has_a_row_per_class_and_is_written_every_epoch(tmp_path):
    model = tiny_gan(conditional=True, num_samples=9)
    assert model.fixed_labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2] and model.grid_columns == 3
    fit(model, tmp_path, epochs=2)
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["epoch_000.png", "epoch_001.png"]


def test_non_finite_loss_stops_naming_the_step(tmp_path):
    model = tiny_gan()
    model.discriminator.register_forward_hook(lambda module, inputs, out: out * math.nan)
    with pytest.raises(UserError, match=r"the discriminator loss became nan at step 0 \(epoch 0\)"):
        fit(model, tmp_path)


@pytest.mark.parametrize("options, message", [
    ({"conditional": True, "num_classes": 1}, "model.conditional=true needs labelled data with at least 2"),
    ({"image_size": 33}, r"model.image_size=33: the dcgan architecture makes even sizes of at least 8 px"),
    ({"loss": "wasserstein"}, "model.loss='wasserstein' is not one of: bce, hinge, lsgan, wgan_gp"),
    ({"generator": "stylegan"}, "model.generator='stylegan' is not one of: mlp, dcgan"),
    ({"discriminator": "resnet"}, "model.discriminator='resnet' is not one of: mlp, dcgan, backbone, proj"),
    ({"discriminator": "backbone"}, "model.discriminator=backbone needs a network from the backbone group"),
    ({"discriminator": "projected"}, "model.discriminator=projected needs a network from the backbone group"),
    ({"d_steps": 0}, "model.d_steps=0 must be >= 1"),
    ({"pack": 0}, r"model.pack=0 must be >= 1"),
    ({"pack": 2, "conditional": True}, "model.pack=2 judges groups of samples, which a conditional model's"),
    ({"pack": 2, "sample_shape": (2,), "generator": "mlp", "discriminator": "mlp"},
     r"model.pack=2 stacks images along their channels, not samples of shape \(2,\)"),
    ({"diffaugment": ["flip"]}, "model.diffaugment has 'flip'; valid: color, translation, cutout"),
    ({"diffaugment": ["color"], "sample_shape": (2,), "generator": "mlp", "discriminator": "mlp"},
     "model.diffaugment augments images, not samples of shape"),
])
def test_bad_gan_settings_are_one_line_errors(options, message):
    with pytest.raises(UserError, match=message):
        tiny_gan(**options)


def backbone_gan(plan, **options) -> GANModule:
    """A tiny GAN whose discriminator is shapes_net (at 32 px) under ``plan``."""
    from visionlab.nets.custom import shapes_net

    torch.manual_seed(0)
    return tiny_gan(discriminator="backbone", backbone=shapes_net(input_size=32), freeze_plan=plan, **options)


def test_backbone_discriminator_keeps_frozen_stages_bit_identical_and_trains_its_head(tmp_path):
    from visionlab.finetune.callback import FreezeScheduleCallback
    from visionlab.finetune.plans import Staged

    model = backbone_gan(Staged({0: "head", 1: 1}), conditional=True)
    stages = {s.name: model.backbone.stage_parameters(s) for s in model.backbone.stages()}
    before = {name: [p.detach().clone() for p in params] for name, params in stages.items()}
    head_before = [p.detach().clone() for p in model.discriminator.head.parameters()]
    fit(model, tmp_path, epochs=1, callbacks=[FreezeScheduleCallback()]).save_checkpoint(tmp_path / "e1.ckpt")
    assert all(torch.equal(a, b) for name in stages for a, b in zip(before[name], stages[name], strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(head_before, model.discriminator.head.parameters(),
                                                       strict=True))
    fit(model, tmp_path, epochs=2, callbacks=[FreezeScheduleCallback()], ckpt_path=str(tmp_path / "e1.ckpt"))
    last = [s.name for s in model.backbone.stages()][-1]  # epoch 1 trains the top stage only
    changed = {name: any(not torch.equal(a, b) for a, b in zip(before[name], stages[name], strict=True))
               for name in stages}
    assert changed == {name: name == last for name in stages}


def test_backbone_discriminator_sees_the_generators_images_in_its_own_input_format():
    from visionlab.finetune.callback import apply_plan
    from visionlab.finetune.plans import FeatureExtraction

    model = backbone_gan(FeatureExtraction(), channels=1, image_size=28)
    apply_plan(model.backbone, model.freeze_plan, epoch=0)
    seen = []
    model.backbone.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    fake = model.generator(torch.randn(2, 16))
    logits = model.discriminator(fake)
    config = model.backbone.data_config
    assert fake.shape == (2, 1, 28, 28) and logits.shape == (2,)
    assert seen[0].shape == (2, 3, 32, 32)  # gray repeated to the backbone's 3 channels, resized
    logits.sum().backward()  # the generator learns through the frozen backbone
    assert all(p.grad is not None for p in model.generator.parameters())
    assert all(p.grad is None for p in model.backbone.parameters()) and config.input_size == 32


@pytest.mark.parametrize("discriminator", ["backbone", "projected"])
def test_model_gan_with_a_backbone_discriminator_runs_from_the_config_and_samples(make_cfg, tmp_path,
                                                                                  discriminator):
    from visionlab.cli.main import main

    cfg = make_cfg("model=gan", f"model.discriminator={discriminator}", "backbone.input_size=32",
                   "freeze=last_n", "freeze.n=1", "model.width=8", "model.latent_dim=16",
                   "trainer.max_epochs=1")
    run(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, weights_only=True)
    assert state["hyper_parameters"]["d_backbone"] == {"name": "shapes_net", "source": "custom"}
    assert any(k.startswith("discriminator.") and ".backbone.body." in k for k in state["state_dict"])
    main(["sample", str(ckpt), "--n", "2", "--out", str(tmp_path / "out")])
    assert (tmp_path / "out" / "sample_0001.png").is_file()


def projected_gan(plan, **options) -> GANModule:
    """A tiny GAN whose discriminator is shapes_net (at 32 px) read at several scales, under ``plan``."""
    from visionlab.nets.custom import shapes_net

    torch.manual_seed(0)
    backbone = shapes_net(input_size=32)
    return tiny_gan(discriminator="projected", backbone=backbone, freeze_plan=plan, **options)


def test_projected_discriminator_reads_the_last_stage_of_every_resolution_and_judges_patches():
    from visionlab.finetune.callback import apply_plan
    from visionlab.finetune.plans import FeatureExtraction

    model = projected_gan(FeatureExtraction(), channels=1)
    apply_plan(model.backbone, model.freeze_plan, epoch=0)
    features = model.discriminator.features
    # shapes_net at 32 px: block1 16x16, block2 8x8, block3 and block4 both 4x4 (the later one is read)
    assert features.stage_names == ["block1", "block2", "block4"]
    assert features.channels == [32, 64, 256] and features.sizes == [(16, 16), (8, 8), (4, 4)]
    fake = model.generator(torch.randn(3, 16))
    logits = model.discriminator(fake)
    assert logits.shape == (3, 3 * 16)  # every scale ends at 4x4 patches
    logits.sum().backward()
    assert all(p.grad is not None for p in model.generator.parameters())  # G learns through the frozen net
    assert all(p.grad is None for p in model.backbone.parameters())
    mixing, scales = model.discriminator.head.mixing, model.discriminator.head.scales
    assert all(p.grad is None and not p.requires_grad for p in mixing.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in scales.parameters())
    assert not any(model.backbone.body.get_submodule(n)._forward_hooks for n in features.stage_names)


def test_projected_discriminators_random_mixing_is_the_same_in_every_build_and_leaves_the_seed_alone():
    from visionlab.nets.projected import RandomMixing

    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    first = RandomMixing([4, 8, 16])
    assert torch.equal(torch.rand(3), expected)  # drawing the projections leaves the run's random stream
    second = RandomMixing([4, 8, 16])
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values(),
                                                  strict=True))
    maps = [torch.randn(2, 4, 8, 8), torch.randn(2, 8, 4, 4), torch.randn(2, 16, 2, 2)]
    mixed = first(maps)
    assert [m.shape for m in mixed] == [m.shape for m in maps]
    deeper_only = first([torch.zeros_like(maps[0]), torch.zeros_like(maps[1]), maps[2]])
    assert deeper_only[0].abs().sum() > 0  # the deepest scale reaches the shallowest (cross-scale mixing)


def test_conditional_projected_discriminator_scores_the_label_asked_for():
    from visionlab.finetune.plans import FeatureExtraction

    model = projected_gan(FeatureExtraction(), conditional=True)
    images = torch.rand(4, 3, 32, 32) * 2 - 1
    for scale in model.discriminator.head.scales:
        torch.nn.init.normal_(scale.embedding.weight)
    model.eval()
    assert not torch.allclose(model.discriminator(images, torch.zeros(4, dtype=torch.long)),
                              model.discriminator(images, torch.ones(4, dtype=torch.long)))


def test_projected_discriminator_refuses_a_backbone_without_feature_maps():
    from visionlab.nets.factory import create_backbone
    from visionlab.nets.projected import ProjectedDiscriminator

    vit = create_backbone("test_vit", source="timm", pretrained=False, input_size=32)
    with pytest.raises(UserError, match="discriminator=projected reads feature maps .* no stage of test_vit"):
        ProjectedDiscriminator(vit)


@pytest.mark.parametrize("name, source", [("resnet18", "torchvision"), ("test_convnext", "timm")])
def test_projected_discriminator_reads_library_backbones_at_several_scales(name, source):
    from visionlab.nets.factory import create_backbone
    from visionlab.nets.projected import ProjectedDiscriminator

    d = ProjectedDiscriminator(create_backbone(name, source=source, pretrained=False, input_size=64), width=8)
    sizes = [s[0] for s in d.features.sizes]
    assert len(sizes) >= 3 and sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)
    assert d(torch.rand(2, 3, 32, 32) * 2 - 1).shape[0] == 2


def test_a_fresh_projection_discriminator_is_not_dominated_by_the_label_term():
    torch.manual_seed(0)
    _, d = build_gan_nets("dcgan", "dcgan", 8, (3, 32, 32), num_classes=8, width=16)
    images, labels = torch.rand(16, 3, 32, 32) * 2 - 1, torch.arange(16) % 8
    features = d.features(images)
    label_term = d.head.projection(features, labels)
    assert label_term.abs().mean() < d.head.out(features).abs().mean() * 5


def test_mlp_pair_makes_points_and_images():
    g, d = build_gan_nets("mlp", "mlp", 8, (2,))
    assert g(torch.randn(5, 8)).shape == (5, 2) and d(torch.randn(5, 2)).shape == (5,)
    g, d = build_gan_nets("dcgan", "dcgan", 8, (1, 28, 28), num_classes=3, width=4)
    labels = torch.tensor([0, 1, 2])
    images = g(torch.randn(3, 8), labels)
    assert images.shape == (3, 1, 28, 28) and images.abs().max() <= 1 and d(images, labels).shape == (3,)


def test_model_gan_runs_from_the_config_and_refuses_gradient_clip_val(make_cfg):
    cfg = make_cfg("model=gan", "model.width=8", "model.latent_dim=16", "trainer.max_epochs=1",
                   "model.conditional=true", "model.ema_decay=0.9")
    assert run(cfg) is None  # no optimized_metric for a GAN
    run_dir = Path(cfg.paths.output_dir)
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "samples" / "epoch_000.png").is_file()
    with pytest.raises(UserError, match="trainer.gradient_clip_val=1.0 does not apply to the GAN"):
        run(make_cfg("model=gan", "trainer.gradient_clip_val=1.0"))


def test_sample_writes_images_and_a_per_class_tree_that_image_folder_reads(tmp_path, capsys):
    from visionlab.cli.main import main
    from visionlab.data.image_folder import ImageFolderDataModule
    from visionlab.nets.custom import shapes_net

    model = tiny_gan(conditional=True)
    trainer = fit(model, tmp_path / "run")
    trainer.save_checkpoint(tmp_path / "gan.ckpt")
    main(["sample", str(tmp_path / "gan.ckpt"), "--n", "5", "--out", str(tmp_path / "five"), "--label", "c1"])
    assert sorted(p.name for p in (tmp_path / "five").iterdir()) == [
        "grid.png", *[f"sample_{i:04d}.png" for i in range(5)]]
    main(["sample", str(tmp_path / "gan.ckpt"), "--per-class", "4", "--out", str(tmp_path / "tree")])
    data = ImageFolderDataModule(root=str(tmp_path / "tree"), val_fraction=0.25, batch_size=4,
                                 data_config=shapes_net(input_size=32).data_config)
    data.setup("fit")
    assert data.class_names == ["c0", "c1", "c2"] and len(data.train_set) == 9 and len(data.val_set) == 3


@pytest.mark.parametrize("args, message", [
    (["--label", "c9"], "label 'c9' is not a class of this GAN: use one of c0, c1, c2 (or 0 to 2)"),
    (["--per-class", "2", "--unconditional"], "need a conditional GAN"),
])
def test_sample_refuses_bad_labels_and_unconditional_per_class(tmp_path, capsys, args, message):
    from visionlab.cli.main import main

    model = tiny_gan(conditional="--unconditional" not in args)
    fit(model, tmp_path / "run", max_steps=2).save_checkpoint(tmp_path / "gan.ckpt")
    with pytest.raises(SystemExit) as exit_info:
        main(["sample", str(tmp_path / "gan.ckpt"), *[a for a in args if a != "--unconditional"]])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_sample_on_a_classifier_checkpoint_is_a_user_error(tmp_path, capsys):
    from visionlab.cli.main import main

    trainer = tiny_trainer(tmp_path, 1)
    trainer.fit(tiny_model(), datamodule=TensorDataModule())
    trainer.save_checkpoint(tmp_path / "classifier.ckpt")
    with pytest.raises(SystemExit):
        main(["sample", str(tmp_path / "classifier.ckpt")])
    assert ("is a classifier checkpoint: it can classify (visionlab eval / predict), export (visionlab "
            "export); "
            "`visionlab sample` needs one that can draw or restore") in capsys.readouterr().err


def _shapes_images(data_dir: Path, count: int) -> torch.Tensor:
    from visionlab.data.shapes_datamodule import ShapesDataModule
    from visionlab.data_config import DataConfig

    data = ShapesDataModule(data_dir=str(data_dir / "shapes"), variant="shapes_target",
                            data_config=DataConfig(3, 32, (0.5,) * 3, (0.5,) * 3))
    data.setup("fit")
    return torch.stack([data.train_set[i][0] for i in range(count)])


def test_offline_fid_and_kid_rank_real_images_above_noise(data_dir):
    from visionlab.metrics.generative import GenerativeMetrics, feature_network

    real = _shapes_images(data_dir, 80)
    first, second = real[0::2], real[1::2]  # the same classes in both halves
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # torchmetrics' note on KID's feature buffer is not shown
        metrics = GenerativeMetrics(feature_network("shapes_net"))
    metrics.update(first, real=True)
    metrics.update(second, real=False)
    real_vs_real = metrics.compute()
    metrics.reset()
    metrics.update(first, real=True)
    metrics.update(torch.rand_like(second) * 2 - 1, real=False)
    real_vs_noise = metrics.compute()
    assert real_vs_real["fid"] < real_vs_noise["fid"] and real_vs_real["kid"] < real_vs_noise["kid"]
    # 40 vs 40 images: noise lands in some real balls (precision 0.6 measured), but it covers
    # none of the real data (recall 0) and few real balls hold it (density 0.16, coverage 0.13)
    assert real_vs_real["recall"] > 0.9 > 0.1 > real_vs_noise["recall"]
    for name in ("density", "coverage"):
        assert real_vs_real[name] > 0.8 > 0.3 > real_vs_noise[name], name


def test_fid_features_must_be_shapes_net_a_classifier_checkpoint_or_present_inception(tmp_path, monkeypatch):
    from visionlab.metrics.generative import feature_network

    with pytest.raises(UserError, match="model.fid_features='incept': use shapes_net"):
        feature_network("incept")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(UserError, match=r"inception needs the Inception weights at .*torch/hub/checkpoints/"
                                        r"weights-inception-2015-12-05-6726825d.pth.*offline use shapes_net"):
        feature_network("inception")
    trainer = tiny_trainer(tmp_path, 1)
    trainer.fit(tiny_model(), datamodule=TensorDataModule())
    trainer.save_checkpoint(tmp_path / "classifier.ckpt")
    features = feature_network(str(tmp_path / "classifier.ckpt"))
    assert features(torch.rand(2, 1, 28, 28)).shape == (2, features.num_features)


def test_inception_features_load_from_the_local_torch_hub_cache_only(tmp_path, monkeypatch):
    import torch_fidelity.feature_extractor_inceptionv3 as fidelity

    from visionlab.metrics.generative import feature_network, inception_weights_path

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    weights = inception_weights_path()
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"not a weights file")
    with pytest.raises(UserError, match="is not a readable Inception weights file"):
        feature_network("inception")
    # A stand-in for the downloaded file: the same network with random weights (built without
    # loading any, since torch-fidelity's constructor insists on loading some).
    with monkeypatch.context() as patch:
        patch.setattr(fidelity.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        torch.save({}, weights)
        random_inception = fidelity.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], str(weights))
    torch.save(random_inception.state_dict(), weights)
    features = feature_network("inception")
    assert features(torch.rand(1, 1, 28, 28)).shape == (1, 2048)


def test_gan_run_logs_fid_and_kid_every_fid_every_epochs(make_cfg):
    cfg = make_cfg("model=gan", "model.width=8", "model.latent_dim=16", "trainer.max_epochs=2",
                   "model.fid_every=2", "logger=csv", "model.d_lr=0.0004")
    started = time.perf_counter()
    run(cfg)
    elapsed = time.perf_counter() - started
    rows = list(csv.DictReader((Path(cfg.paths.output_dir) / "csv" / "metrics.csv").open()))
    fid_rows = [row for row in rows if row.get("val/fid")]
    assert len(fid_rows) == 1 and float(fid_rows[0]["epoch"]) == 1.0 and float(fid_rows[0]["val/kid"]) > -1
    trained = float(fid_rows[0]["time/train_seconds"])  # the training time so far, beside each FID
    assert 0 < trained < elapsed
    last = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["visionlab_train_seconds"] >= trained * (1 - 1e-6)  # a resumed run counts on (CSV: float32)
    rates = [row for row in rows if row.get("lr-generator/group0")]
    assert float(rates[0]["lr-generator/group0"]) == pytest.approx(cfg.model.g_lr)
    assert float(rates[0]["lr-discriminator/group0"]) == pytest.approx(cfg.model.d_lr)


def test_kept_real_features_are_computed_once_and_give_the_same_scores(data_dir):
    from visionlab.metrics.generative import GenerativeMetrics, feature_network

    real = _shapes_images(data_dir, 40)
    network = feature_network("shapes_net")
    seen = []
    network.register_forward_hook(lambda module, inputs, output: seen.append(len(inputs[0])))
    metrics = GenerativeMetrics(network, keep_real=True)
    metrics.update(real[:20], real=True)
    metrics.update(real[20:], real=False)
    first = metrics.compute()
    metrics.reset()
    assert metrics.has_real
    metrics.update(real[20:], real=False)  # the next evaluation adds only generated images
    again = metrics.compute()
    assert again.pop("kid") == pytest.approx(first.pop("kid"), rel=1e-4)  # KID sums random subsets
    assert again == first
    assert first["real_samples"] == first["generated_samples"] == 20
    # one pass of the network serves FID and KID: the reals once in all, the fakes once per evaluation
    assert sum(seen) == 20 + 2 * 20


def test_a_gan_run_extracts_the_validation_features_at_its_first_evaluation_only(make_cfg, monkeypatch):
    from visionlab.metrics.generative import GenerativeMetrics

    added = {"real": 0, "generated": 0}
    update = GenerativeMetrics.update

    def counting(self, images, real):
        added["real" if real else "generated"] += len(images)
        return update(self, images, real)

    monkeypatch.setattr(GenerativeMetrics, "update", counting)
    cfg = make_cfg("model=gan", "model.width=8", "model.latent_dim=16", "trainer.max_epochs=3",
                   "model.fid_every=1", "logger=csv")
    run(cfg)
    metrics_csv = Path(cfg.paths.output_dir) / "csv" / "metrics.csv"
    rows = [row for row in csv.DictReader(metrics_csv.open()) if row["val/fid"]]
    validation = int(float(rows[0]["val/real_samples"]))
    assert [float(row["val/generated_samples"]) for row in rows] == [validation] * 3
    assert added == {"real": validation, "generated": 3 * validation}


def test_class_coverage_on_predictions_with_known_answers():
    from visionlab.metrics.class_coverage import ClassCoverage

    def confident(classes: list[int]) -> torch.Tensor:
        return torch.nn.functional.one_hot(torch.tensor(classes), 4).float() * 0.95 + 0.0125

    coverage = ClassCoverage(torch.full((4,), 0.25))
    coverage.update(confident([0, 0, 1, 1, 2, 3, 3, 3]))  # class 2 drawn at half its share: still fair
    assert coverage.compute() == {"class_coverage": 1.0, "rarest_class_share": 0.125, "recognised": 1.0}
    coverage.reset()
    coverage.update(confident([0, 1, 0, 1]), asked=torch.tensor([0, 1, 2, 3]))  # collapse onto two classes
    unsure = torch.full((4, 4), 0.25)
    coverage.update(unsure, asked=torch.tensor([0, 1, 2, 3]))
    assert coverage.compute() == {"class_coverage": 0.5, "rarest_class_share": 0.0, "recognised": 0.5,
                                  "conditional_accuracy": pytest.approx(3 / 8)}  # argmax of a tie: class 0


def test_the_linear_probe_separates_separable_features():
    from visionlab.metrics.class_coverage import LinearProbe

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(300) % 3
    features = torch.randn(300, 16, generator=g) * 0.5 + torch.eye(3, 16)[labels] * 100 + 7
    probe = LinearProbe(16, 3).fit(features, labels)
    assert (probe(features).argmax(-1) == labels).all()
    assert probe(features).sum(-1) == pytest.approx(torch.ones(300))


def test_a_conditional_gan_run_logs_class_metrics_judged_by_its_probe(make_cfg, caplog):
    cfg = make_cfg("experiment=cgan_shapes", "model.width=8", "model.latent_dim=16", "trainer.max_epochs=1",
                   "model.fid_every=1", "logger=csv", "model.num_samples=8", "callbacks.augmented_batch=null")
    with caplog.at_level("INFO"):
        run(cfg)
    assert "class metrics: a linear probe on shapes_net features of 48 training images" in caplog.text
    row = next(r for r in csv.DictReader((Path(cfg.paths.output_dir) / "csv" / "metrics.csv").open())
               if r["val/fid"])
    for name in ("class_coverage", "rarest_class_share", "recognised", "conditional_accuracy"):
        assert 0.0 <= float(row[f"val/{name}"]) <= 1.0, name
    class_fids = {k: float(v) for k, v in row.items() if k.startswith("val/class_fid/")}
    assert len(class_fids) == 8 and "val/class_fid/star" in class_fids and min(class_fids.values()) > 0


def test_frechet_distance_and_per_class_fid_on_sets_with_known_answers():
    from visionlab.metrics.generative import class_fids, frechet_distance

    g = torch.Generator().manual_seed(0)
    a = torch.randn(400, 4, generator=g)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = torch.tensor([3.0, 0.0, 4.0, 0.0])
    assert frechet_distance(a, a + shift) == pytest.approx(25.0, rel=1e-6)  # same covariance: ‖Δμ‖²
    scaled = (torch.cov(a.T).trace() + a.mean(0).square().sum()).item()  # (1 - 2)² (tr Σ + ‖μ‖²)
    assert frechet_distance(a, a * 2) == pytest.approx(scaled, rel=1e-4)
    labels = torch.arange(400) % 2
    fake = a + shift * (labels == 1)[:, None]  # class 1 drawn off, class 0 exactly
    scores = class_fids(a, labels, fake, labels)
    assert scores[0] == pytest.approx(0.0, abs=1e-6) and scores[1] == pytest.approx(25.0, rel=1e-6)
    assert set(class_fids(a, labels, fake[:1], labels[:1])) == set()  # one image of a class: left out


def test_a_classifier_checkpoint_judges_the_class_metrics_when_given_and_must_know_the_datas_classes(
        trained_run, make_cfg, caplog):
    _, best, _, _ = trained_run  # a classifier of the default data (shapes_target, 6 classes)
    gan = ["model=gan", "model.width=8", "model.latent_dim=16", "trainer.max_epochs=1", "model.fid_every=1",
           "logger=csv", "model.num_samples=6", "callbacks.augmented_batch=null",
           f"model.eval_classifier={best}"]
    cfg = make_cfg(*gan, "model.conditional=true")
    with caplog.at_level("INFO"):
        run(cfg)
    assert f"class metrics: the classifier {best} classifies the 24 validation images" in caplog.text
    row = next(r for r in csv.DictReader((Path(cfg.paths.output_dir) / "csv" / "metrics.csv").open())
               if r["val/fid"])
    for name in ("class_coverage", "rarest_class_share", "recognised", "conditional_accuracy"):
        assert 0.0 <= float(row[f"val/{name}"]) <= 1.0, name
    with pytest.raises(UserError, match=r"model.eval_classifier=.* predicts the classes arrow, chevron, .*, "
                                        r"the data has arrow, circle, .*: give a classifier trained on"):
        run(make_cfg(*gan, "data=shapes_plain"))
    with pytest.raises(UserError, match=r"model.eval_classifier=.*missing.ckpt: no such file"):
        run(make_cfg(*gan[:-1], f"model.eval_classifier={best.parent / 'missing.ckpt'}"))


@pytest.mark.parametrize("choice, classes, classifier, message", [
    ("bogus", 8, None, "model.class_metrics='bogus' must be auto, true or false"),
    (True, 1, None, "model.class_metrics=true needs labelled data with 2\\+ classes, and this data has 1"),
    ("auto", 0, "c.ckpt", "model.eval_classifier=c.ckpt needs labelled data with 2\\+ classes, and this"),
    (False, 8, "c.ckpt", "model.eval_classifier=c.ckpt judges the class metrics, which model.class_metrics="),
])
def test_class_metrics_settings_are_checked(choice, classes, classifier, message):
    from visionlab.modules.fid_validation import check_class_metrics

    with pytest.raises(UserError, match=message):
        check_class_metrics(choice, classes, classifier)
    assert check_class_metrics("auto", 1) is False and check_class_metrics("auto", 2) is True


def test_precision_recall_density_coverage_on_sets_with_known_answers():
    from visionlab.metrics.prdc import prdc

    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[10.0, 0.0], [-10.0, 0.0], [0.0, 10.0], [0.0, -10.0]])

    def modes(indices, n):  # n points around each of the given modes
        return torch.cat([centres[i] + torch.randn(n, 2, generator=g) for i in indices])

    real = modes(range(4), 100)
    same = prdc(real, real)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    assert same["density"] == pytest.approx(1.0 + 1 / 5, abs=0.05)  # each point also lies in its own ball
    far = prdc(real, modes(range(4), 100) + 1000.0)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    half = prdc(real, modes([0, 1], 200))  # realistic samples of half the modes: mode collapse
    assert half["precision"] > 0.95 and half["recall"] == pytest.approx(0.5, abs=0.05)
    assert half["coverage"] == pytest.approx(0.5, abs=0.05)
    fresh = prdc(real, modes(range(4), 100))  # a new draw of the same distribution
    assert min(fresh["precision"], fresh["recall"], fresh["coverage"]) > 0.85
    assert fresh["density"] == pytest.approx(1.0, abs=0.2)


def test_the_lowest_fid_is_best_ckpt_and_sampling_a_run_folder_draws_from_it(make_cfg, tmp_path, capsys):
    from visionlab.cli.main import main

    cfg = make_cfg("experiment=dcgan_shapes", "model.fid_every=1", "model.width=8", "model.num_samples=4",
                   "callbacks.augmented_batch=null")
    run(cfg)
    run_dir = Path(cfg.paths.output_dir)
    best = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    (callback,) = [v for k, v in best["callbacks"].items() if "'monitor': 'val/fid'" in k]
    rows = csv.DictReader(next(run_dir.rglob("metrics.csv")).open())
    fids = [float(row["val/fid"]) for row in rows if row["val/fid"]]
    assert len(fids) == 2 and float(callback["best_model_score"]) == pytest.approx(min(fids))
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()  # still written every epoch, for resuming
    main(["sample", str(run_dir), "--n", "2", "--out", str(tmp_path / "drawn")])
    assert f"using {run_dir / 'checkpoints' / 'best.ckpt'}" in capsys.readouterr().out


@pytest.mark.slow
def test_cas_trains_on_generated_and_on_real_images_and_tests_both_on_real(in_project, capsys):
    from visionlab.cli.main import main

    main(["train", "experiment=cgan_shapes", "data.train_per_class=6", "data.val_per_class=3",
          "data.test_per_class=3", "model.width=8", "model.latent_dim=16", "model.num_samples=8",
          "trainer.max_epochs=1", "model.fid_every=0", "callbacks.augmented_batch=null"])
    run_dir = next((in_project / "outputs").glob("*/*"))
    capsys.readouterr()
    main(["cas", str(run_dir), "--per-class", "4", "trainer.max_epochs=1", "callbacks.augmented_batch=null"])
    out = capsys.readouterr().out
    report = json.loads((run_dir / "cas" / "cas.json").read_text())
    assert report["per_class"] == 4 and report["classes"] == 8 and report["test_images"] == 24
    assert 0 <= report["generated_accuracy"] <= 1 and 0 <= report["real_accuracy"] <= 1
    assert f"scores {report['generated_accuracy']:.4f} on the 24 real test images" in out
    for tree in ("generated", "real"):
        counts = {d.name: len(list(d.glob("*.png"))) for d in (run_dir / "cas" / tree / "train").iterdir()}
        assert len(counts) == 8 and set(counts.values()) == {4}, tree
    assert (run_dir / "cas" / "generated" / "test").resolve() == (run_dir / "cas" / "real" / "test").resolve()
    main(["sample", str(run_dir), "--per-class", "4", "--out", str(in_project / "drawn")])
    drawn = sorted(p.relative_to(in_project / "drawn") for p in (in_project / "drawn").rglob("*.png"))
    trained_on = run_dir / "cas" / "generated" / "train"
    assert drawn  # the CAS trains on exactly what `sample --per-class` writes
    assert all((trained_on / p).read_bytes() == (in_project / "drawn" / p).read_bytes() for p in drawn)
    with pytest.raises(SystemExit):  # an earlier CAS is not replaced without --force
        main(["cas", str(run_dir)])
    assert "already exists: give another --out, or --force" in capsys.readouterr().err


def test_r1_penalty_is_half_the_squared_gradient_norm_at_the_real_samples():
    from visionlab.modules.gan_losses import r1_penalty

    w = torch.tensor([3.0, -4.0])
    real = torch.randn(5, 2, requires_grad=True)
    assert r1_penalty(real @ w, real).item() == pytest.approx(12.5)  # ‖w‖² / 2 for a linear D
    quadratic = (real**2).sum(dim=1)  # ∇ = 2x: E[‖2x‖²] / 2 = 2 E[‖x‖²]
    expected = 2 * (real**2).sum(dim=1).mean().item()
    assert r1_penalty(quadratic, real).item() == pytest.approx(expected, rel=1e-5)


def test_r1_weight_adds_the_penalty_to_the_discriminators_loss(tmp_path, monkeypatch):
    import visionlab.modules.gan as gan_module

    losses = {}
    for weight in (0.0, 2.0):
        model = tiny_gan(r1_weight=weight)
        monkeypatch.setattr(gan_module, "r1_penalty", lambda logits, real: 10.0 + 0 * logits.sum())
        first = first_losses(model)
        fit(model, tmp_path / str(weight))
        losses[weight] = first["discriminator"]
    assert losses[2.0] == pytest.approx(losses[0.0] + 20.0, abs=1e-4)
    with pytest.raises(UserError, match=r"model.r1_weight=-1 must be >= 0"):
        tiny_gan(r1_weight=-1)


def test_class_conditional_batchnorm_generator_draws_per_class_from_the_same_noise():
    g, _ = build_gan_nets("dcgan_cbn", "dcgan", 8, (1, 32, 32), num_classes=3, width=4)
    norms = [m for m in g.modules() if type(m).__name__ == "ClassBatchNorm2d"]
    assert len(norms) == 3  # after the projection and both inner upsamplings: every BatchNorm takes the class
    z = torch.randn(6, 8)
    g.eval()
    with torch.no_grad():
        for norm in norms:  # classes that differ in their scales and shifts
            torch.nn.init.normal_(norm.scale.weight)
            torch.nn.init.normal_(norm.shift.weight)
        a, b = g(z, torch.zeros(6, dtype=torch.long)), g(z, torch.ones(6, dtype=torch.long))
    assert a.shape == (6, 1, 32, 32) and (a - b).abs().mean() > 1e-3
    plain, _ = build_gan_nets("dcgan_cbn", "dcgan", 8, (1, 32, 32), num_classes=0, width=4)
    assert not any(type(m).__name__ == "ClassBatchNorm2d" for m in plain.modules())  # unconditional: DCGAN


def test_conditional_gan_with_class_batchnorm_trains_and_is_rebuilt_for_sampling(tmp_path):
    model = tiny_gan(generator="dcgan_cbn", conditional=True, ema_decay=0.9)
    before = [p.detach().clone() for p in model.generator.parameters()]
    fit(model, tmp_path)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.generator.parameters(), strict=True))
    state = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    reloaded = GANModule.from_checkpoint(state, tmp_path / "last.ckpt", None)
    z, labels = model.fixed_noise[:4], torch.tensor([0, 1, 2, 0])
    assert torch.equal(reloaded(z, labels), model.eval()(z, labels))


def test_packed_discriminator_judges_groups_of_images_stacked_along_channels(tmp_path):
    model = tiny_gan(pack=2)
    seen = []
    model.discriminator.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape)))
    logits = model.judge(torch.rand(7, 3, 32, 32) * 2 - 1, None)  # 3 pairs; the 7th image is left out
    assert seen == [(3, 6, 32, 32)] and logits.shape == (3,)
    fit(model, tmp_path)  # trains as any GAN
    assert all(s[1] == 6 for s in seen)
    with pytest.raises(UserError, match="a batch of 1 samples is smaller than model.pack=2"):
        model.judge(torch.zeros(1, 3, 32, 32), None)
    with pytest.raises(UserError, match="model.pack=2 stacks 2 images along the channels, which the pretr"):
        backbone_gan(None, pack=2)


def first_losses(model: GANModule) -> dict[str, float]:
    """Filled as ``model`` trains: each network's loss at its first update."""
    losses, original = {}, model.update

    def update(optimizer, loss, network, name):
        losses.setdefault(name, loss.item())
        original(optimizer, loss, network, name)

    model.update = update
    return losses


def test_auxiliary_classifier_learns_the_real_classes_and_pulls_the_generator_towards_them(tmp_path,
                                                                                           monkeypatch):
    model = tiny_gan(conditional=True, class_loss_weight=1.0)
    head = model.discriminator.head
    assert head.classifier.out_features == CLASSES
    logits = model.judge(torch.rand(4, 3, 32, 32) * 2 - 1, torch.arange(4) % CLASSES)
    assert logits.shape == (4,) and model.class_logits().shape == (4, CLASSES)
    before = head.classifier.weight.detach().clone()
    losses = first_losses(model)
    entropies = []  # the cross-entropies of the first step: D's on the real images, then G's on its own
    cross_entropy = F.cross_entropy
    monkeypatch.setattr(F, "cross_entropy", lambda *a, **k: entropies.append(cross_entropy(*a, **k)) or
                        entropies[-1])
    fit(model, tmp_path)
    assert not torch.equal(before, head.classifier.weight)  # trained with D
    monkeypatch.undo()
    plain = tiny_gan(conditional=True)
    plain_losses = first_losses(plain)
    fit(plain, tmp_path / "plain")
    # the same first batches: the untrained classifier's cross-entropy on the real images is about
    # ln(classes); G's, after D's update, is on top of an adversarial loss close to the plain GAN's
    assert entropies[0].item() == pytest.approx(math.log(CLASSES), abs=0.3) and entropies[1].item() > 0.5
    for name, entropy in zip(("discriminator", "generator"), entropies, strict=False):
        assert losses[name] - entropy.item() == pytest.approx(plain_losses[name], abs=0.1)


@pytest.mark.parametrize("options, message", [
    ({"class_loss_weight": 1.0}, r"model.class_loss_weight=1.0: .* needs labels \(model.conditional=true\)"),
    ({"class_loss_weight": -1.0, "conditional": True}, "must be >= 0"),
])
def test_auxiliary_classifier_settings_are_checked(options, message):
    with pytest.raises(UserError, match=message):
        tiny_gan(**options)
    with pytest.raises(UserError, match="model.class_loss_weight needs a discriminator with one logit head"):
        projected_gan(None, conditional=True, class_loss_weight=1.0)


def test_a_gan_trained_from_memory_takes_the_same_steps_as_from_its_loader(make_cfg):
    """data.in_memory serves the loader's batches in the loader's order: the same weights come out."""
    weights = []
    for held in ("true", "false"):
        cfg = make_cfg("model=gan", "data=shapes_mono", "model.image_size=16", "model.channels=1",
                       "model.width=8", "model.latent_dim=8", "model.num_samples=4", "trainer.max_epochs=2",
                       "test_after_fit=false", "optimized_metric=null", f"data.in_memory={held}",
                       "callbacks.augmented_batch=null")
        cfg.paths.output_dir = f"{cfg.paths.output_dir}_{held}"
        run(cfg)
        last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
        weights.append(torch.load(last, weights_only=True))
    held, loaded = (w["state_dict"] for w in weights)
    assert held.keys() == loaded.keys()
    assert all(torch.equal(held[key], loaded[key]) for key in held)
