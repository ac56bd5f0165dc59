"""Files a run loads from the network, where they are kept, and how a run without network fails.

Backbone weights (timm / Hugging Face hub, torchvision), torchvision datasets and the Inception
weights of ``model.fid_features=inception`` are each described by a :class:`RemoteFile`: what
it is, the URL it comes from, where it sits once cached, and how to fetch it into that cache
(the library's own download, so the run later finds it exactly where it looks).

``visionlab prefetch`` fetches a run's files on a machine with network (:mod:`visionlab.prefetch`).
A run calls :func:`require_available` first: when a file it needs is missing and the source's
host cannot be reached within :data:`PROBE_SECONDS` (DNS and TCP connect, tried once per host
and process), it stops with one line naming the files and the prefetch command, instead of the
hub client's minute of retries; when every file is cached and the hub is unreachable, the hub
client is switched to offline mode, so it reads its cache without asking the network.
``HF_HUB_OFFLINE=1`` is honoured (no probe of the hub), and so are ``HF_HOME``/``HF_HUB_CACHE``
and ``TORCH_HOME``; :func:`use_cache_dir` (``paths.cache_dir``) points both caches at one
folder, e.g. on a cluster's shared filesystem.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from visionlab.errors import UserError

# How long a run waits to learn that a download host is unreachable.
PROBE_SECONDS = 3.0


@dataclass(frozen=True)
class RemoteFile:
    """A file (or a dataset's files) a run loads from the network.

    ``what`` names it for people (``timm weights of resnet18.a1_in1k``); ``url`` is where it comes
    from (its host is what :func:`reachable` probes); ``folder`` is where it is written (the hub
    cache, the torch hub cache, a dataset's root); ``cached()`` is its path once cached, else
    None; ``fetch()`` downloads it into that cache; ``hub`` marks files the Hugging Face hub
    client reads (its offline mode applies to them).
    """

    what: str
    url: str
    folder: Path
    cached: Callable[[], Path | None]
    fetch: Callable[[], None]
    hub: bool = False

    @property
    def host(self) -> str:
        """``host:port`` of :attr:`url`."""
        parts = urlsplit(self.url)
        return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


@functools.cache
def reachable(host: str, timeout: float = PROBE_SECONDS) -> bool:
    """Whether a TCP connection to ``host`` (``name:port``) opens within ``timeout`` seconds, name
    lookup included (it runs in a thread, since a resolver can hang far longer). Asked once per
    host and process: a sweep's jobs in one process share the answer."""
    name, port = host.rsplit(":", 1)
    outcome: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection((name, int(port)), timeout=timeout):
                outcome.append(True)
        except OSError:
            outcome.append(False)

    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(timeout)
    return bool(outcome and outcome[0])


def hub_offline() -> bool:
    """Whether the Hugging Face hub client is in offline mode (``HF_HUB_OFFLINE=1``, or set by
    :func:`require_available`)."""
    from huggingface_hub import constants

    return bool(constants.is_offline_mode())


def set_hub_offline() -> None:
    """Put the hub client in offline mode for this process: it reads its cache and asks nothing."""
    from huggingface_hub import constants

    constants.HF_HUB_OFFLINE = True
    os.environ["HF_HUB_OFFLINE"] = "1"


def use_cache_dir(cache_dir: str | Path | None) -> None:
    """Keep hub weights under ``<cache_dir>/huggingface/hub`` and torch hub files (torchvision
    weights, torch-fidelity's Inception) under ``<cache_dir>/torch/hub``; None leaves the
    libraries' own caches (``HF_HOME``, ``TORCH_HOME``, or their defaults under ``~/.cache``)."""
    if cache_dir is None:
        return
    import torch.hub
    from huggingface_hub import constants

    root = Path(cache_dir).expanduser()
    constants.HF_HUB_CACHE = str(root / "huggingface" / "hub")
    os.environ["HF_HUB_CACHE"] = constants.HF_HUB_CACHE
    torch.hub.set_dir(str(root / "torch" / "hub"))
    os.environ["TORCH_HOME"] = str(root / "torch")


def hub_cache_dir() -> Path:
    """The folder the Hugging Face hub client caches into."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def torch_hub_dir() -> Path:
    """The folder torch hub downloads (torchvision weights, torch-fidelity) are kept in."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def prefetch_command() -> str:
    """``visionlab prefetch <overrides>`` with the overrides of the job Hydra is running (a
    placeholder outside one)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return "visionlab prefetch <the run's overrides>"
    return " ".join(["visionlab prefetch", *HydraConfig.get().overrides.task])


def require_available(files: Sequence[RemoteFile]) -> None:
    """Return when every file is cached or its host answers; otherwise a UserError (module docstring).

    Files already cached need no network; when the hub's host does not answer, the hub client is
    switched to offline mode so that it reads them without retrying.
    """
    missing = [f for f in files if f.cached() is None]
    unreachable = [f for f in missing if (f.hub and hub_offline()) or not reachable(f.host)]
    if unreachable:
        names = "; ".join(f"{f.what} ({f.url})" for f in unreachable)
        why = ("HF_HUB_OFFLINE is set" if all(f.hub for f in unreachable) and hub_offline()
               else f"{unreachable[0].host} did not answer within {PROBE_SECONDS:g} s")
        raise UserError(f"this run downloads {names}, which is not in the cache, and {why}: run "
                        f"`{prefetch_command()}` on a machine with network (into the same cache; "
                        "paths.cache_dir=<shared folder> puts it on a cluster's shared filesystem), or use "
                        "local files (backbone.weights=<file>, backbone.pretrained=false)")
    cached_hub = [f for f in files if f.hub and f not in missing]
    if cached_hub and not hub_offline() and not reachable(cached_hub[0].host):
        set_hub_offline()
