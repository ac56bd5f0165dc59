"""2-process CPU DDP (gloo), one launch for two models (the launch is most of the cost): a
classifier whose stage unfreezes mid-run, and a conditional GAN with an EMA generator and a
staged backbone discriminator. Both must train and stay identical on the two ranks.

The ranks are started as torchrun or SLURM start them (``LOCAL_RANK`` and the rendezvous
address in the environment), forked from the test process (``tests/forked.py``): Lightning's own
launcher would start rank 1 as a new interpreter, which imports everything again."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import ddp_runs
import pytest
import torch
from forked import run_forked


def free_port() -> int:
    """A TCP port nothing listens on now, for the ranks' rendezvous."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_two_ranks(out: Path) -> None:
    """Train every model of ``ddp_runs`` on 2 ranks; ``out`` gets each rank's weights."""
    rendezvous = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "NODE_RANK": "0",
                  "WORLD_SIZE": "2"}

    def rank(local_rank: int) -> None:
        os.environ.update(rendezvous, LOCAL_RANK=str(local_rank))
        ddp_runs.train(out, ["classifier", "gan", "projected_gan"])

    log = out / "ranks.log"
    codes = run_forked([lambda: rank(0), lambda: rank(1)], log)
    assert codes == [0, 0], f"the ranks exited with {codes}:\n{log.read_text()[-3000:]}"


@pytest.mark.slow
def test_ddp_keeps_the_ranks_identical_for_a_staged_classifier_and_a_gan(tmp_path):
    launch_two_ranks(tmp_path)
    check_staged_classifier(tmp_path)
    check_gan(tmp_path)
    check_gan(tmp_path, "projected_gan", "discriminator.features.backbone.body")


def check_staged_classifier(ddp_out: Path) -> None:
    """Both ranks froze block1 in epoch 0, trained it in epoch 1 and ended identical."""
    late = "backbone.body.block1.conv1.conv.weight"  # frozen in epoch 0, trained in epoch 1
    ranks = [torch.load(ddp_out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0]["world_size"] == 2
    for rank in ranks:
        assert torch.equal(rank["after_epoch0"][late], rank["initial"][late])  # frozen in epoch 0
        assert not torch.equal(rank["final"][late], rank["initial"][late])  # trained in epoch 1
    for name in ranks[0]["parameters"]:
        assert torch.equal(ranks[0]["final"][name], ranks[1]["final"][name]), name


def check_gan(ddp_out: Path, name: str = "gan", body: str = "discriminator.backbone.body") -> None:
    """Both ranks ended with identical GAN parameters; what trains moved, block1 stayed frozen
    (``body``: where the discriminator's backbone sits in the state dict)."""
    gans = [torch.load(ddp_out / f"{name}_rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert gans[0]["world_size"] == 2
    for name in gans[0]["parameters"]:  # BatchNorm statistics are per rank (without sync_batchnorm)
        assert torch.equal(gans[0]["final"][name], gans[1]["final"][name]), name
    initial, final = gans[0]["initial"], gans[0]["final"]
    trained = ("generator.", "generator_ema.", "discriminator.head.", f"{body}.block4")
    for prefix in trained:
        assert any(not torch.equal(final[n], initial[n]) for n in final if n.startswith(prefix)), prefix
    frozen = f"{body}.block1.conv1.conv.weight"  # block1 never unfreezes
    assert torch.equal(final[frozen], initial[frozen])
