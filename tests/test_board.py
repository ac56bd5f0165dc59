"""Comparing runs in TensorBoard, checked through TensorBoard's own HTTP API: a tiny sweep and a GAN
run, linked by ``visionlab board``'s names, served by a real ``tensorboard`` process."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from visionlab.cli.board import link_runs
from visionlab.cli.main import main

SMALL = ["debug=fast", "callbacks.progress_bar=null", "callbacks.model_summary=null",
         "data.train_per_class=4", "data.val_per_class=2", "data.test_per_class=2"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request(port: int, path: str, body: dict | None = None):
    """TensorBoard's JSON answer at ``path`` (a POST with ``body``, as its own frontend sends)."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", "X-XSRF-Protected": "1"}
    with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}{path}", data, headers),
                                timeout=10) as answer:
        return json.loads(answer.read())


@pytest.fixture
def tensorboard(tmp_path):
    """Start ``tensorboard`` on a folder; stopped after the test."""
    processes = []

    def start(logdir: Path) -> int:
        port = free_port()
        command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--port", str(port),
                   "--host", "127.0.0.1", "--reload_interval", "0"]  # 0: read the events once, at start
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(process)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if request(port, "/data/runs"):
                    return port
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("tensorboard did not answer within 90 s")

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.slow
def test_runs_are_named_by_what_differs_and_hparams_list_every_runs_keys_differing_first(
        in_project, tmp_path, tensorboard):
    main(["train", "-m", "optimizer.lr=1e-3,1e-2", *SMALL])
    main(["train", "model=gan", "data=shapes_mono", "model.image_size=16", "model.width=8",
          "model.num_samples=4", *SMALL])
    farm = tmp_path / "farm"
    links = link_runs([in_project / "outputs"], farm)
    classifier_runs = {"lr=0.001", "lr=0.01"}  # the sweep's values, keys by their last part
    assert classifier_runs <= set(links) and len(links) == 3
    assert any(name.startswith("model=gan,") for name in links)  # mixed runs: the kind leads the name
    port = tensorboard(farm)

    runs = request(port, "/data/runs")  # no date, time, job number or tensorboard/ before the overrides
    assert set(runs) == set(links) | {f"{name}/hparams" for name in links}  # each with its HPARAMS session

    experiment = request(port, "/data/plugin/hparams/experiment", {"experimentName": ""})
    infos = {info["name"]: info for info in experiment["hparamInfos"]}
    names = [info["name"] for info in experiment["hparamInfos"]]
    differing = [name for name in names if infos[name].get("differs")]
    assert names[: len(differing)] == differing  # the keys that differ come first (checked by default)
    assert {"optimizer.lr", "model"} <= set(differing)
    assert {"backbone.name", "freeze", "seed"} <= set(names)  # the classifier runs' own keys
    assert {"model.loss", "model.generator", "model.d_steps", "model.image_size"} <= set(names)  # the GAN's
    metrics = [info["name"]["tag"] for info in experiment["metricInfos"]]
    assert {"hparams/test_acc", "hparams/best_val_acc", "run/wall_time_s"} <= set(metrics)
    # TensorBoard checks the first five metrics: results, never the epoch or the freeze counters
    assert all(tag.startswith("hparams/") for tag in metrics[:5]) and "hparams/test_acc" in metrics[:5]
    assert not [tag for tag in metrics if tag == "epoch" or tag.startswith(("freeze/", "train/"))]


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["SIGTERM", "SIGHUP"])
def test_board_stops_tensorboard_and_removes_its_links_on_sigterm_and_sighup(tmp_path, stop):
    import os
    import signal

    from torch.utils.tensorboard import SummaryWriter

    run_dir = tmp_path / "outputs" / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text("monitor: val/acc\nmode: max\n")
    with SummaryWriter(str(run_dir / "tensorboard" / "run")) as writer:
        writer.add_scalar("val/acc", 0.5, 0)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    port = free_port()
    board = subprocess.Popen([sys.executable, "-m", "visionlab.cli.main", "board", str(tmp_path / "outputs"),
                              "--port", str(port), "--host", "127.0.0.1"],
                             env={**os.environ, "TMPDIR": str(scratch)}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if request(port, "/data/runs"):
                break
        except OSError:
            time.sleep(0.1)
    assert list(scratch.glob("visionlab-board-*"))  # the folder of links, while it serves
    board.send_signal(getattr(signal, stop))
    out, err = board.communicate(timeout=60)
    assert board.returncode == 0 and not list(scratch.glob("visionlab-board-*"))  # the links removed
    assert not list(scratch.glob(".tensorboard-info/*"))  # TensorBoard ended cleanly (removed its pid file)
    with pytest.raises(OSError):  # and TensorBoard, its child, no longer serving
        request(port, "/data/runs")
    assert "TensorFlow installation not found" not in err and "1 run(s)" in out


def fake_run(root: Path, name: str, overrides: list[str], evaluated: bool = False) -> Path:
    """A run folder with its overrides and an (empty) event file, and an ``eval`` one if ``evaluated``."""
    run_dir = root / name
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text("monitor: val/acc\nmode: max\n")
    (run_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    for folder in ["tensorboard/run", *(["tensorboard/eval"] if evaluated else [])]:
        (run_dir / folder).mkdir(parents=True)
        (run_dir / folder / "events.out.tfevents.1.host.0.0").write_bytes(b"")
    (run_dir / "tensorboard" / "run" / "hparams.yaml").write_text("{}\n")  # the training run's (Lightning)
    return run_dir


def test_long_names_leave_out_what_most_runs_share_and_keep_what_tells_them_apart(tmp_path):
    """Cut at 120 characters, two runs differing only in their last override were 'in_memory=' and
    'in_memory= #2'."""
    common = [f"data.root=/data/{'x' * 40}", "backbone=timm", "backbone.name=fastvit_t8", "freeze=none",
              "backbone.input_size=64", "trainer.max_epochs=6"]
    fake_run(tmp_path, "a", [*common, "data.in_memory=false"])
    fake_run(tmp_path, "b", [*common, "data.in_memory=true"])
    fake_run(tmp_path, "c", ["freeze=gradual"])
    names = set(link_runs([tmp_path], tmp_path / "farm"))
    assert {name for name in names if "in_memory" in name} == {
        "backbone=timm,name=fastvit_t8,freeze=none,input_size=64,max_epochs=6,in_memory=false…",
        "backbone=timm,name=fastvit_t8,freeze=none,input_size=64,max_epochs=6,in_memory=true…"}
    assert "freeze=gradual" in names and all(len(name) <= 120 for name in names)


def test_an_evaluated_run_is_linked_beside_its_eval_folder_and_its_folder_is_left_as_it_was(tmp_path):
    """The eval folder's link went inside the run's own link, that is into the run's folder, and a
    second `visionlab board` then stopped on it (FileExistsError)."""
    run_dir = fake_run(tmp_path / "outputs", "r", ["optimizer.lr=0.1"], evaluated=True)
    fake_run(tmp_path / "outputs", "s", ["optimizer.lr=0.2"])
    before = sorted(run_dir.rglob("*"))
    for farm in ("farm1", "farm2"):
        links = link_runs([tmp_path / "outputs"], tmp_path / farm)
        assert set(links) == {"lr=0.1", "lr=0.1 [eval]", "lr=0.2"}
        assert (tmp_path / farm / "lr=0.1 [eval]").resolve() == (run_dir / "tensorboard" / "eval").resolve()
    assert sorted(run_dir.rglob("*")) == before
