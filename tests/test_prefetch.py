"""``visionlab prefetch`` and runs without network, against a local server that stands in for the
Hugging Face hub (``HF_ENDPOINT``) and for a dataset's download URL: nothing here touches the
internet."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import socket
import struct
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors.torch import save

from visionlab import downloads
from visionlab.downloads import reachable, require_available
from visionlab.errors import UserError
from visionlab.prefetch import prefetch, run_files

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
REPO = "timm/test_resnet.r160_in1k"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def idx_images(n: int) -> bytes:
    """``n`` 28x28 MNIST-format images (idx3), gzipped."""
    pixels = torch.randint(0, 256, (n, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    return gzip.compress(struct.pack(">IIII", 2051, n, 28, 28) + pixels.numpy().tobytes())


def idx_labels(n: int) -> bytes:
    """Labels 0..9 in turn (idx1), gzipped."""
    return gzip.compress(struct.pack(">II", 2049, n) + bytes(i % 10 for i in range(n)))


class Files(http.server.ThreadingHTTPServer):
    """A local server for ``files`` (path -> bytes) that answers the hub client's HEAD with the
    headers it needs (commit, ETag, size) and counts the GETs per path."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files, self.gets = files, Counter()
        super().__init__(("127.0.0.1", 0), Handler)
        # shutdown() waits for the serving loop to look at its flag: every 0.05 s, not the default 0.5 s
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves :class:`Files`."""

    def _headers(self) -> bytes | None:
        body = self.server.files.get(self.path)
        if body is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        self.send_response(200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return body

    def do_HEAD(self) -> None:  # noqa: N802  (http.server's name)
        self._headers()

    def do_GET(self) -> None:  # noqa: N802
        body = self._headers()
        if body is not None:
            self.server.gets[self.path] += 1
            self.wfile.write(body)

    def log_message(self, *args) -> None:
        """Quiet."""


def closed_port() -> str:
    """The URL of a port nothing listens on (the network turned off)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture(scope="module")
def served_weights() -> dict[str, torch.Tensor]:
    """The weights the stand-in hub serves for timm's test_resnet."""
    import timm

    torch.manual_seed(1)
    return {k: v.contiguous() for k, v in timm.create_model("test_resnet").state_dict().items()}


@pytest.fixture
def hub(monkeypatch, tmp_path, served_weights):
    """The stand-in server, with the hub client pointed at it, empty caches under ``tmp_path`` and
    every process-wide setting (hub endpoint and offline flag, torch hub folder) restored after."""
    import torch.hub
    from huggingface_hub import constants

    images, labels = idx_images(100), idx_labels(100)
    mnist = {"train-images-idx3-ubyte.gz": images, "train-labels-idx1-ubyte.gz": labels,
             "t10k-images-idx3-ubyte.gz": images, "t10k-labels-idx1-ubyte.gz": labels}
    server = Files({f"/{REPO}/resolve/main/model.safetensors": save(served_weights),
                    **{f"/mnist/{name}": body for name, body in mnist.items()}})
    point_hub_at(monkeypatch, server.url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "torch"))
    for name in ("HF_HUB_OFFLINE", "HF_HUB_CACHE", "TORCH_HOME"):
        monkeypatch.delenv(name, raising=False)
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [f"{server.url}/mnist/"])
    monkeypatch.setattr(torchvision.datasets.MNIST, "resources",
                        [(name, hashlib.md5(body).hexdigest()) for name, body in mnist.items()])
    reachable.cache_clear()
    yield server
    reachable.cache_clear()
    server.shutdown()


def point_hub_at(monkeypatch, endpoint: str) -> None:
    """What ``HF_ENDPOINT=endpoint`` sets when the hub client is imported."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    template = endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    reachable.cache_clear()


TIMM = ["backbone=timm", "backbone.name=test_resnet", "backbone.input_size=32"]


def test_prefetch_fetches_once_and_the_run_then_loads_offline(hub, tmp_path, monkeypatch, make_cfg, capsys,
                                                                served_weights):
    cache = f"paths.cache_dir={tmp_path / 'cache'}"
    assert prefetch(CONF_DIR, [*TIMM, cache], multirun=False) == 0
    assert hub.gets[f"/{REPO}/resolve/main/model.safetensors"] == 1
    assert "1 fetched now, 0 already cached" in capsys.readouterr().out
    assert list((tmp_path / "cache" / "huggingface" / "hub").glob("models--timm--test_resnet*"))
    assert prefetch(CONF_DIR, [*TIMM, cache], multirun=False) == 0  # a second prefetch fetches nothing
    assert sum(hub.gets.values()) == 1
    assert "0 fetched now, 1 already cached" in capsys.readouterr().out

    point_hub_at(monkeypatch, closed_port())  # the network off
    cfg = make_cfg(*TIMM, cache)
    started = time.perf_counter()
    require_available(run_files(cfg))
    assert downloads.hub_offline()  # the hub client reads its cache and asks nothing
    from visionlab.nets.factory import create_backbone

    backbone = create_backbone("test_resnet", source="timm", pretrained=True)
    assert time.perf_counter() - started < 10
    loaded = backbone.body.state_dict()
    assert torch.equal(loaded["conv1.0.weight"], served_weights["conv1.0.weight"])


def test_a_run_that_needs_a_download_fails_in_seconds_offline_naming_prefetch(hub, monkeypatch, in_project,
                                                                              capsys):
    from visionlab.cli.main import main

    point_hub_at(monkeypatch, closed_port())
    started = time.perf_counter()
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *TIMM])
    assert time.perf_counter() - started < 10
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: this run downloads timm weights timm/test_resnet.r160_in1k (")
    assert "run `visionlab prefetch backbone=timm backbone.name=test_resnet backbone.input_size=32` on a " \
           "machine with network" in error


def test_hf_hub_offline_fails_at_once_without_probing(hub, monkeypatch, make_cfg):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(downloads, "reachable", lambda host: pytest.fail("probed the network"))
    with pytest.raises(UserError, match="HF_HUB_OFFLINE is set"):
        require_available(run_files(make_cfg(*TIMM)))


def test_a_host_that_never_answers_is_given_up_within_the_probe_time(monkeypatch):
    def hang(*args, **kwargs):  # a connection that times out long after the probe gave up on it
        time.sleep(30)
        raise OSError("timed out")

    monkeypatch.setattr(socket, "create_connection", hang)
    reachable.cache_clear()
    started = time.perf_counter()
    assert not reachable("blackhole.invalid:443", timeout=0.5)
    assert time.perf_counter() - started < 2
    reachable.cache_clear()


def test_a_torchvision_dataset_is_prefetched_and_read_without_network(hub, tmp_path, monkeypatch, make_cfg,
                                                                       capsys):
    data = [f"data.root={tmp_path / 'mnist'}"]
    assert prefetch(CONF_DIR, ["data=mnist", *data], multirun=False) == 0
    assert "dataset mnist (torchvision MNIST)  fetched" in capsys.readouterr().out
    requests = sum(hub.gets.values())
    assert set(hub.gets) == {f"/mnist/{name}" for name, _ in torchvision_resources()}
    assert prefetch(CONF_DIR, ["data=mnist", *data], multirun=False) == 0
    assert sum(hub.gets.values()) == requests and "0 fetched now, 1 already cached" in capsys.readouterr().out

    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [f"{closed_port()}/mnist/"])
    reachable.cache_clear()
    cfg = make_cfg("data=mnist", *data, tiny=False)
    require_available(run_files(cfg))  # cached: no error, no download
    from hydra.utils import instantiate

    from visionlab.nets.custom import shapes_net

    datamodule = instantiate(cfg.data, data_config=shapes_net(input_size=28).data_config)
    datamodule.prepare_data()
    datamodule.setup("fit")
    assert len(datamodule.train_set) == 90 and sum(hub.gets.values()) == requests


def torchvision_resources() -> list[tuple[str, str]]:
    import torchvision.datasets

    return torchvision.datasets.MNIST.resources


def test_a_sweep_reports_the_job_that_does_not_compose_and_fetches_the_rest(hub, tmp_path, capsys):
    failed = prefetch(CONF_DIR, ["backbone=timm", "backbone.name=test_resnet,resnet_nope",
                                 f"paths.cache_dir={tmp_path / 'cache'}"], multirun=True)
    out = capsys.readouterr().out
    assert failed == 1
    assert "error: job backbone=timm backbone.name=resnet_nope" in out and "unknown timm backbone" in out
    assert hub.gets[f"/{REPO}/resolve/main/model.safetensors"] == 1 and "1 file(s) for the 2 runs" in out


def test_an_unwritable_cache_is_one_line_naming_the_folder(hub, tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(UserError, match=f"cannot write to {tmp_path / 'a_file' / 'huggingface' / 'hub'}"):
        prefetch(CONF_DIR, [*TIMM, f"paths.cache_dir={tmp_path / 'a_file'}"], multirun=False)
    assert not hub.gets


def test_the_default_job_downloads_nothing(make_cfg):
    assert run_files(make_cfg()) == []


def test_a_full_disk_is_one_line_naming_the_folder(hub, tmp_path, monkeypatch):
    import errno

    import timm

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(timm, "create_model", no_space)
    folder = tmp_path / "cache" / "huggingface" / "hub"
    with pytest.raises(UserError, match=f"could not write timm weights {REPO} to {folder}: No space left"):
        prefetch(CONF_DIR, [*TIMM, f"paths.cache_dir={tmp_path / 'cache'}"], multirun=False)
