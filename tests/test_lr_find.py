"""The learning-rate range test (``tune=lr_find``, ``visionlab lr-find``)."""

from __future__ import annotations

import json
from functools import partial

import lightning as L
import numpy as np
import pytest
import torch
from tiny import TensorDataModule, tiny_model, tiny_trainer
from torch.utils.data import DataLoader, TensorDataset

from visionlab.callbacks.lr_range_test import LRRangeTest, smoothed, suggest_lr
from visionlab.errors import UserError
from visionlab.finetune.plans import FeatureExtraction, FreezePlan
from visionlab.train import run

CURVATURES = torch.linspace(0.5, 2.0, 8)  # eigenvalues of the quadratic's Hessian


class Quadratic(L.LightningModule):
    """Least squares ``0.5 * mean((X w - y)^2)`` on one fixed full batch, plain SGD: a convex problem
    whose Hessian has the eigenvalues :data:`CURVATURES` (SGD diverges above ``2 / 2.0 = 1``)."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        basis, _ = torch.linalg.qr(torch.randn(8, 8, generator=g))
        root = basis @ torch.diag(CURVATURES.sqrt()) @ basis.T
        raw = torch.randn(256, 8, generator=g)
        whitened = raw @ torch.linalg.inv(torch.linalg.cholesky(raw.T @ raw / 256)).T
        self.x = whitened @ root  # x.T x / n == root @ root == the Hessian, exactly
        self.y = self.x @ torch.randn(8, generator=g)
        self.w = torch.nn.Parameter(torch.zeros(8))

    def training_step(self, batch, batch_idx):
        return 0.5 * ((self.x @ self.w - self.y) ** 2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def one_batch_per_step() -> DataLoader:
    return DataLoader(TensorDataset(torch.zeros(1000, 1)), batch_size=1)


def range_test(model: L.LightningModule, tmp_path, test: LRRangeTest, **loaders) -> LRRangeTest:
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=str(tmp_path), callbacks=[test],
                        **test.trainer_options())
    trainer.fit(model, **loaders)
    test.finish()
    return test


def test_the_suggestion_falls_where_the_loss_falls_fastest_on_a_convex_problem(tmp_path):
    test = range_test(Quadratic(), tmp_path, LRRangeTest(min_lr=1e-4, max_lr=10.0, num_steps=100),
                      train_dataloaders=one_batch_per_step())
    lrs, losses = np.array(test.result.lrs), np.array(test.result.losses)
    # Deterministic (full batch): the raw curve's steepest fall per decade, read without smoothing.
    before_minimum = slice(0, int(np.argmin(losses)) + 1)
    slopes = np.gradient(losses[before_minimum], np.log10(lrs[before_minimum]))
    fastest = lrs[before_minimum][int(np.argmin(slopes))]
    suggestion = test.result.suggestion
    assert fastest / 2 <= suggestion <= fastest * 2, (suggestion, fastest)
    assert suggestion < 1.0  # below where SGD diverges on this problem
    assert "diverged" in test.result.stopped  # and the test saw that divergence, and stopped
    assert lrs[-1] < 10.0 and lrs[-1] > 1.0


def test_suggest_lr_reads_the_smoothed_curve_before_its_minimum():
    lrs = np.logspace(-6, 0, 61)
    # flat, a fall steepest at 1e-3 (a logistic in log lr), a minimum at 1e-2, then a rise
    losses = 2 - 1.5 / (1 + np.exp(-4 * (np.log10(lrs) + 3)))
    losses[lrs > 1e-2] += 3 * (np.log10(lrs[lrs > 1e-2]) + 2)
    assert suggest_lr(lrs, losses, window=5) == pytest.approx(1e-3, rel=0.13)
    assert suggest_lr(lrs, np.linspace(1, 3, 61), window=5) is None  # never falls: no suggestion
    flat = 2 - 0.04 / (1 + np.exp(-4 * (np.log10(lrs) + 3)))  # falls by 2 %: noise, no suggestion
    assert suggest_lr(lrs, flat, window=5) is None
    assert suggest_lr(lrs, 2 - (2 - flat) * 5, window=5) == pytest.approx(1e-3, rel=0.13)  # by 10 %: one
    assert smoothed(np.array([0.0, 3.0, 0.0, 3.0]), 3).tolist() == [1.5, 1.0, 2.0, 1.5]


class GroupLRs(L.Callback):
    """Every parameter group's LR and the backbone's weights at each step."""

    def __init__(self) -> None:
        self.lrs: list[list[float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.lrs.append([group["lr"] for group in trainer.optimizers[0].param_groups])


def tiny_range_test(root, test: LRRangeTest, *callbacks) -> L.Trainer:
    """The tiny test trainer with the range test's options."""
    options = test.trainer_options()
    return tiny_trainer(root, options.pop("max_epochs"), test, *callbacks, **options)


def test_groups_keep_their_ratio_and_frozen_stages_stay_frozen(tmp_path):
    model = tiny_model(FeatureExtraction(lr_mult=0.1), lr=1e-3)
    frozen = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    recorder, test = GroupLRs(), LRRangeTest(min_lr=1e-5, max_lr=1e-1, num_steps=12, reference_lr=1e-3)
    trainer = tiny_range_test(tmp_path, test, recorder)
    trainer.fit(model, datamodule=TensorDataModule())
    assert len(recorder.lrs) == 12
    names = [group["name"] for group in trainer.optimizers[0].param_groups]
    for step, lrs in enumerate(recorder.lrs):
        expected = {name: test.lr_at(step) * (1.0 if name == "head" else 0.1) for name in names}
        assert dict(zip(names, lrs, strict=True)) == pytest.approx(expected, rel=1e-9)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, frozen[key]), key


@pytest.mark.parametrize("plan_epoch, backbone_trains", [(0, False), (1, True)])
def test_the_plan_is_held_at_plan_epoch_for_every_step(tmp_path, plan_epoch, backbone_trains):
    from visionlab.finetune.plans import Staged

    model = tiny_model(Staged(milestones={0: "head", 1: "all"}), lr=1e-3)
    before = {k: v.clone() for k, v in model.backbone.body.state_dict().items() if "conv" in k}
    test = LRRangeTest(min_lr=1e-5, max_lr=1e-2, num_steps=12, plan_epoch=plan_epoch, reference_lr=1e-3)
    tiny_range_test(tmp_path, test).fit(model, datamodule=TensorDataModule())  # 2 batches a pass: 6 passes
    after = model.backbone.body.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items()) != backbone_trains


def test_the_run_scheduler_is_paused_and_checkpoints_are_not_written(tmp_path):
    from torch.optim.lr_scheduler import StepLR

    decay = partial(StepLR, step_size=1, gamma=0.01)
    model = tiny_model(FreezePlan(), lr=1e-3, scheduler=decay, interval="step")
    recorder, test = GroupLRs(), LRRangeTest(min_lr=1e-4, max_lr=1e-2, num_steps=10, reference_lr=1e-3)
    tiny_range_test(tmp_path, test, recorder).fit(model, datamodule=TensorDataModule())
    assert [lrs[-1] for lrs in recorder.lrs] == pytest.approx([test.lr_at(s) for s in range(10)], rel=1e-9)
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.parametrize("kwargs, message", [
    ({"min_lr": 1.0, "max_lr": 0.1}, "tune.min_lr=1.0 and tune.max_lr=0.1 must satisfy"),
    ({"min_lr": 0.0}, "tune.min_lr=0.0"),
    ({"num_steps": 3}, "tune.num_steps=3 is too few"),
    ({"divergence": 1.0}, "tune.divergence=1.0 must be > 1"),
    ({"plan_epoch": -1}, "tune.plan_epoch=-1 must be >= 0"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(UserError, match=message.replace(".", r"\.")):
        LRRangeTest(**kwargs)


def test_a_loss_that_never_falls_gets_no_suggestion_but_a_hint(tmp_path):
    from visionlab.callbacks.lr_range_test import RangeTestResult

    test = LRRangeTest(min_lr=1e-9, max_lr=1e-8, num_steps=10)
    test.result = RangeTestResult(lrs=[test.lr_at(s) for s in range(10)], losses=[1.0] * 10)
    trainer = tiny_trainer(tmp_path, 1)
    never = r"the loss never fell \(by 5%\) between lr 1.0e-09 and 1.0e-08 .*tune.max_lr"
    with pytest.raises(UserError, match=never):
        test.report(trainer, tmp_path, 1e-3)
    assert (tmp_path / "lr_find.png").is_file()  # the curve is written all the same, to look at


def test_lr_find_command_writes_the_curve_and_prints_the_override(in_project, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from visionlab.cli.main import main

    main(["lr-find", "data.train_per_class=8", "data.val_per_class=4", "data.test_per_class=4",
          "backbone.input_size=32", "tune.num_steps=30", "callbacks.progress_bar=null"])
    suggestion = capsys.readouterr().out.strip().splitlines()[-1]
    assert suggestion.startswith("suggested: optimizer.lr=")
    lr = float(suggestion.split("=")[1])
    run_dir = next((in_project / "outputs").glob("*/*"))
    report = json.loads((run_dir / "lr_find.json").read_text())
    assert report["suggestion"] == pytest.approx(lr, rel=0.01) and len(report["losses"]) == 30
    assert report["lrs"][0] == pytest.approx(1e-7) and report["lrs"][-1] == pytest.approx(1.0)
    assert (run_dir / "lr_find.png").stat().st_size > 10_000
    events = EventAccumulator(str(next(run_dir.rglob("events.out.tfevents.*")).parent)).Reload()
    assert len(events.Scalars("lr_find/loss")) == 30
    assert "lr_find/curve" in events.Tags()["images"]


def test_lr_find_on_a_gan_is_refused(make_cfg):
    with pytest.raises(UserError, match="sweeps the learning rate of one optimizer, and model=gan"):
        run(make_cfg("experiment=gan_toy2d", "tune=lr_find", tiny=False))
