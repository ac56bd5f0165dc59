"""The loggers users bring beside TensorBoard, offline: MLflow (a local file store) and W&B (offline
mode), each read back for the run name, the params and the final metrics HPARAMS shows."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from visionlab.cli.main import main

SMALL = ["debug=fast", "callbacks.progress_bar=null", "callbacks.model_summary=null",
         "data.train_per_class=4", "data.val_per_class=2", "data.test_per_class=2", "freeze=two_phase"]


@pytest.mark.slow
def test_mlflow_wandb_and_tensorboard_log_the_same_run_name_params_and_results(in_project, monkeypatch):
    """One run with the three loggers (each read back as its own tool reads it)."""
    pytest.importorskip("mlflow")
    pytest.importorskip("wandb")
    import mlflow

    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    main(["train", "logger=[tensorboard,mlflow,wandb]", *SMALL])
    (run_dir,) = (in_project / "outputs").glob("*/*")
    check_wandb_offline_run(run_dir)
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{in_project / 'outputs' / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "train"]
    (run,) = client.search_runs([experiment.experiment_id])
    assert "freeze=two_phase" in run.info.run_name and "logger" not in run.info.run_name  # the overrides
    assert run.data.params["freeze"] == "two_phase" and run.data.params["backbone.name"] == "shapes_net"
    assert run.data.params["status"] == "finished"
    assert {"hparams/test_acc", "hparams/best_val_acc", "run/wall_time_s"} <= set(run.data.metrics)
    assert "val/acc" in run.data.metrics
    (events,) = (p for p in (in_project / "outputs").rglob("tensorboard/*") if p.is_dir())
    assert events.name == run.info.run_name  # the same name in both
    tags = client.get_experiment(experiment.experiment_id).tags  # the runs table's columns in MLflow's UI
    shared = json.loads(tags["mlflow.sharedViewState.visionlab"])
    assert {"metrics.`hparams/test_acc`", "params.`freeze`"} <= set(shared["selectedColumns"])
    served = mlflow_ui_runs(in_project, experiment.experiment_id)  # the README's `mlflow ui` command
    assert [r["info"]["run_name"] for r in served] == [run.info.run_name]
    params = {p["key"]: p["value"] for p in served[0]["data"]["params"]}
    assert params["freeze"] == "two_phase"
    assert "hparams/test_acc" in {metric["key"] for metric in served[0]["data"]["metrics"]}


def mlflow_ui_runs(project: Path, experiment_id: str) -> list[dict]:
    """The runs of ``experiment_id`` as ``mlflow ui --backend-store-uri sqlite:///outputs/mlflow.db``
    serves them on 127.0.0.1 (its REST API), the server stopped with SIGTERM afterwards."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Without its job runner (eight Python processes for GenAI jobs and trace rollups, 24 s of CPU
    # against 6 s, and 4 s to stop), as docs/comparing-runs.md advises for browsing runs.
    server = subprocess.Popen(["mlflow", "ui", "--backend-store-uri", "sqlite:///outputs/mlflow.db", "--host",
                               "127.0.0.1", "--port", str(port), "--workers", "1"], cwd=project,
                              env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1)
                break
            except OSError:
                assert server.poll() is None, server.stderr.read()  # it crashed (e.g. on the store's schema)
                time.sleep(0.1)
        request = urllib.request.Request(f"{url}/api/2.0/mlflow/runs/search", method="POST",
                                         data=json.dumps({"experiment_ids": [experiment_id]}).encode(),
                                         headers={"Content-Type": "application/json"})
        return json.loads(urllib.request.urlopen(request, timeout=10).read())["runs"]
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) is not None


def wandb_records(path: Path):
    """The protobuf records of a W&B offline run file (``run-<id>.wandb``): a ``:W&B`` header, then
    LevelDB-style log blocks of 32 KiB whose chunks (checksum, length, type) hold the records."""
    from wandb.proto.wandb_internal_pb2 import Record

    data, block, position, pending = path.read_bytes(), 32768, 7, b""
    assert data[:4] == b":W&B"
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a chunk header is padding
            position += block - position % block
            continue
        length, kind = int.from_bytes(data[position + 4:position + 6], "little"), data[position + 6]
        if position + 7 + length > len(data):  # a tail still being written
            return
        chunk, position = data[position + 7:position + 7 + length], position + 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):  # a whole record, or its last chunk
            record = Record()
            record.ParseFromString(pending)
            yield record


def check_wandb_offline_run(run_dir: Path) -> None:
    """W&B logged ``run_dir``'s run offline (no account): under the TensorBoard run's name, with the
    run's params and results, in the file ``wandb sync`` uploads later."""
    (offline,) = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")  # `wandb sync` uploads it later
    (events,) = (p for p in run_dir.glob("tensorboard/*") if p.is_dir())
    deadline = time.monotonic() + 30  # wandb's service process may still be writing the file's tail
    while True:
        records = list(wandb_records(offline))
        kinds = [r.WhichOneof("record_type") for r in records]
        names = [r.run.display_name for r, kind in zip(records, kinds, strict=True) if kind == "run"]
        config = {item.key: json.loads(item.value_json) for r, kind in zip(records, kinds, strict=True)
                  if kind == "config" for item in r.config.update}
        logged = {item.key or "/".join(item.nested_key) for r, kind in zip(records, kinds, strict=True)
                  if kind == "history" for item in r.history.item}
        complete = {"hparams/test_acc", "hparams/best_val_acc", "val/acc"} <= logged and "status" in config
        if complete or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert names and set(names) == {events.name}  # the TensorBoard run's name
    assert config["freeze"] == "two_phase" and config["status"] == "finished"
    assert {"hparams/test_acc", "hparams/best_val_acc", "val/acc"} <= logged
