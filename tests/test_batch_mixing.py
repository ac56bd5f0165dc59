"""MixUp / CutMix (the ``mixup`` group): blends, soft targets, reproducibility, refusals."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from tiny import CLASSES, TensorDataModule, tiny_model, tiny_trainer

from visionlab.errors import UserError
from visionlab.modules.batch_mixing import BatchMixing, soft_target_cross_entropy, soft_targets
from visionlab.train import run


def batch(n: int = 8, size: int = 16):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, size, size, generator=g), torch.arange(n) % CLASSES


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("alphas", [(0.2, 0.0), (0.0, 1.0), (0.8, 1.0)], ids=["mixup", "cutmix", "both"])
def test_targets_are_the_blend_of_the_two_labels_and_sum_to_one(alphas, smoothing):
    x, y = batch()
    mixing = BatchMixing(*alphas, seed=3)
    for batch_idx in range(20):
        mixed = mixing(x, y, CLASSES, smoothing, epoch=0, batch_idx=batch_idx)
        assert mixed.method in ("mixup", "cutmix")
        assert mixed.targets.sum(-1) == pytest.approx(torch.ones(len(y)), abs=1e-6)
        expected = (mixed.lam * F.one_hot(y, CLASSES) + (1 - mixed.lam) * F.one_hot(y.flip(0), CLASSES)) \
            * (1 - smoothing) + smoothing / CLASSES
        torch.testing.assert_close(mixed.targets, expected.float())


def test_mixup_blends_each_image_with_its_partner_by_lam():
    x, y = batch()
    mixed = BatchMixing(mixup_alpha=0.4, seed=1)(x, y, CLASSES, 0.0, epoch=0, batch_idx=0)
    assert 0 < mixed.lam < 1
    torch.testing.assert_close(mixed.images, mixed.lam * x + (1 - mixed.lam) * x.flip(0))


def test_cutmix_pastes_a_box_whose_area_is_the_partner_weight():
    x, y = batch(size=32)
    for batch_idx in range(10):
        mixed = BatchMixing(cutmix_alpha=1.0, seed=2)(x, y, CLASSES, 0.0, epoch=0, batch_idx=batch_idx)
        from_partner = (mixed.images == x.flip(0)) & (mixed.images != x)
        pasted = from_partner[0, 0].float().mean().item()  # share of pixels taken from the partner
        assert pasted == pytest.approx(1 - mixed.lam, abs=1e-6)
        assert torch.equal(mixed.images[~from_partner], x[~from_partner])


def test_without_a_blend_the_loss_is_label_smoothed_cross_entropy():
    x, y = batch()
    logits = torch.randn(len(y), CLASSES, generator=torch.Generator().manual_seed(1))
    mixed = BatchMixing(mixup_alpha=0.2, prob=0.0)(x, y, CLASSES, 0.1, epoch=0, batch_idx=0)
    assert mixed.method == "none" and torch.equal(mixed.images, x)
    torch.testing.assert_close(soft_target_cross_entropy(logits, mixed.targets),
                               F.cross_entropy(logits, y, label_smoothing=0.1))
    assert torch.equal(soft_targets(y, CLASSES, 1.0, 0.0), F.one_hot(y, CLASSES).float())


def test_draws_depend_only_on_seed_epoch_and_batch():
    x, y = batch()
    mixing = BatchMixing(mixup_alpha=0.8, cutmix_alpha=1.0, seed=7)
    draws = [mixing(x, y, CLASSES, 0.0, epoch=e, batch_idx=b) for e in range(2) for b in range(3)]
    again = [BatchMixing(mixup_alpha=0.8, cutmix_alpha=1.0, seed=7)(x, y, CLASSES, 0.0, epoch=e, batch_idx=b)
             for e in range(2) for b in range(3)]
    assert [(d.method, d.lam) for d in draws] == [(d.method, d.lam) for d in again]
    assert all(torch.equal(d.images, a.images) for d, a in zip(draws, again, strict=True))
    assert len({d.lam for d in draws}) == len(draws)


@pytest.mark.parametrize("switch_prob, method", [(0.0, "mixup"), (1.0, "cutmix")])
def test_switch_prob_chooses_between_the_blends(switch_prob, method):
    x, y = batch()
    mixing = BatchMixing(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=switch_prob)
    assert {mixing(x, y, CLASSES, 0.0, epoch=0, batch_idx=b).method for b in range(10)} == {method}


def test_off_epoch_leaves_later_epochs_whole():
    x, y = batch()
    mixing = BatchMixing(mixup_alpha=0.2, off_epoch=2)
    assert [mixing.mixes_in_epoch(e) for e in range(4)] == [True, True, False, False]
    assert mixing(x, y, CLASSES, 0.0, epoch=2, batch_idx=0).method == "none"


@pytest.mark.parametrize("kwargs, named", [
    ({"mixup_alpha": -0.1}, "mixup.mixup_alpha=-0.1"),
    ({"cutmix_alpha": float("nan")}, "mixup.cutmix_alpha=nan"),
    ({"switch_prob": 1.5}, "mixup.switch_prob=1.5"),
    ({"prob": -1}, "mixup.prob=-1"),
    ({"off_epoch": -1}, "mixup.off_epoch=-1"),
])
def test_bad_settings_are_refused_naming_the_key(kwargs, named):
    with pytest.raises(UserError, match=named.replace(".", r"\.")):
        BatchMixing(**kwargs)


def test_training_accuracy_counts_the_dominant_label(tmp_path):
    """Trained with MixUp, the classifier still learns the brightness classes, and its training
    metrics are computed against the label with the larger weight."""
    model = tiny_model(lr=3e-3)
    model.batch_mixing = BatchMixing(mixup_alpha=0.4, seed=0)
    trainer = tiny_trainer(tmp_path, 6)
    trainer.fit(model, datamodule=TensorDataModule(n_train=48))
    assert trainer.callback_metrics["val/acc"] > 1 / CLASSES + 0.2
    assert 0 < trainer.callback_metrics["train/acc"] <= 1


def test_one_class_is_refused():
    from functools import partial

    from visionlab.modules.classifier import ClassifierModule
    from visionlab.nets.custom import shapes_net

    with pytest.raises(UserError, match="1 class: set mixup=none"):
        ClassifierModule(backbone=shapes_net(input_size=32), num_classes=1,
                         optimizer=partial(torch.optim.Adam, lr=1e-3),
                         batch_mixing=BatchMixing(mixup_alpha=0.2))


@pytest.mark.parametrize("overrides, tiny, message", [
    (["mixup=cutmix", "data.cache_features=true"], True, "data.cache_features=true trains the head"),
    (["experiment=gan_toy2d", "mixup.mixup_alpha=0.2"], False, "mixup.mixup_alpha=0.2 mixes a classifier's"),
])
def test_runs_that_cannot_mix_are_refused(make_cfg, overrides, tiny, message):
    with pytest.raises(UserError, match=message):
        run(make_cfg(*overrides, tiny=tiny))


def test_auto_cache_stays_off_when_mixing(make_cfg, caplog):
    cfg = make_cfg("mixup=mixup", "data.cache_features=auto", "trainer.max_epochs=1", "test_after_fit=false")
    with caplog.at_level("INFO"):
        run(cfg)
    assert "feature cache (data.cache_features=auto): off: MixUp (alpha 0.2) mixes the images" in caplog.text


def test_presets_compose_to_the_documented_blends(make_cfg):
    blends = {name: instantiate(make_cfg(f"mixup={name}").mixup).describe()
              for name in ("none", "mixup", "cutmix", "mixup_cutmix")}
    assert blends == {"none": "no mixing", "mixup": "MixUp (alpha 0.2)", "cutmix": "CutMix (alpha 1)",
                      "mixup_cutmix": "MixUp (alpha 0.8) / CutMix (alpha 1)"}
