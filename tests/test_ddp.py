"""2-process CPU DDP (gloo), one launch for both tests: a classifier whose stage unfreezes
mid-run, and a conditional GAN with an EMA generator and a staged backbone discriminator.
Both must train and stay identical on the two ranks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).with_name("ddp_script.py")


@pytest.fixture(scope="module")
def ddp_out(tmp_path_factory) -> Path:
    """Run ``ddp_script.py`` once for both models; the folder holds each rank's weights."""
    out = tmp_path_factory.mktemp("ddp")
    proc = subprocess.run([sys.executable, str(SCRIPT), str(out), "classifier", "gan"], capture_output=True,
                          text=True, timeout=600, cwd=SCRIPT.parents[1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_ddp_ranks_keep_identical_weights_after_an_unfreeze(ddp_out):
    late = "backbone.body.block1.conv1.conv.weight"  # frozen in epoch 0, trained in epoch 1
    ranks = [torch.load(ddp_out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0]["world_size"] == 2
    for rank in ranks:
        assert torch.equal(rank["after_epoch0"][late], rank["initial"][late])  # frozen in epoch 0
        assert not torch.equal(rank["final"][late], rank["initial"][late])  # trained in epoch 1
    for name in ranks[0]["parameters"]:
        assert torch.equal(ranks[0]["final"][name], ranks[1]["final"][name]), name


def test_ddp_gan_keeps_both_networks_identical_on_the_two_ranks(ddp_out):
    gans = [torch.load(ddp_out / f"gan_rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert gans[0]["world_size"] == 2
    for name in gans[0]["parameters"]:  # BatchNorm statistics are per rank (without sync_batchnorm)
        assert torch.equal(gans[0]["final"][name], gans[1]["final"][name]), name
    initial, final = gans[0]["initial"], gans[0]["final"]
    trained = ("generator.", "generator_ema.", "discriminator.head.", "discriminator.backbone.body.block4")
    for prefix in trained:
        assert any(not torch.equal(final[n], initial[n]) for n in final if n.startswith(prefix)), prefix
    frozen = "discriminator.backbone.body.block1.conv1.conv.weight"  # block1 never unfreezes
    assert torch.equal(final[frozen], initial[frozen])
