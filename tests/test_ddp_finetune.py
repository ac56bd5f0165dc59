"""2-process CPU DDP: a stage unfrozen mid-run trains and stays identical on both ranks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).with_name("ddp_script.py")
LATE = "backbone.body.block1.conv1.conv.weight"  # frozen in epoch 0, trained in epoch 1


def test_ddp_ranks_keep_identical_weights_after_an_unfreeze(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "classifier"], capture_output=True,
                          text=True, timeout=600, cwd=SCRIPT.parents[1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0]["world_size"] == 2
    for rank in ranks:
        assert torch.equal(rank["after_epoch0"][LATE], rank["initial"][LATE])  # frozen in epoch 0
        assert not torch.equal(rank["final"][LATE], rank["initial"][LATE])  # trained in epoch 1
    for name in ranks[0]["parameters"]:
        assert torch.equal(ranks[0]["final"][name], ranks[1]["final"][name]), name
