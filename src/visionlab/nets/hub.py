"""Published (hub) weights of a backbone: the files a pretrained backbone loads, and the one-line
error when they cannot be fetched.

:func:`timm_weights` and :func:`torchvision_weights` describe the
:class:`~visionlab.downloads.RemoteFile` that ``pretrained=true`` downloads
(:func:`visionlab.nets.factory.backbone_files` picks one from the ``backbone`` group's values):
timm's weights from the Hugging Face hub (``model.safetensors``, else ``pytorch_model.bin``;
older timm models from a URL into the torch hub cache), torchvision's from its URL into the
torch hub cache. Fetching builds the model the way the run will, so the library puts the file
where the run looks.
"""

from __future__ import annotations

from pathlib import Path

from visionlab.downloads import RemoteFile, hub_cache_dir, torch_hub_dir
from visionlab.errors import first_line

# The files timm's hub loader tries, in its order.
HUB_WEIGHT_FILES = ("model.safetensors", "open_clip_model.safetensors", "pytorch_model.bin",
                    "open_clip_pytorch_model.bin")


def download_failure_message(name: str, err: Exception) -> str:
    """The message shown when ``name``'s published weights cannot be downloaded."""
    return (
        f"the pretrained weights for '{name}' could not be downloaded (offline?): "
        f"{first_line(err)}; "
        "set backbone.pretrained=false to train from scratch or backbone.weights=<file> "
        "to load a local file"
    )


def hub_cached(repo_id: str, filenames: tuple[str, ...]) -> Path | None:
    """The first of ``filenames`` in the Hugging Face cache for ``repo_id`` (main revision), or None."""
    from huggingface_hub import try_to_load_from_cache

    for filename in filenames:
        path = try_to_load_from_cache(repo_id, filename, cache_dir=hub_cache_dir())
        if isinstance(path, str):
            return Path(path)
    return None


def url_cached(url: str) -> Path | None:
    """The torch hub cache's copy of ``url`` (``<torch hub>/checkpoints/<file name>``), or None."""
    path = torch_hub_dir() / url.rsplit("/", 1)[-1].split("?")[0]
    return path if path.is_file() else None


def timm_weights(name: str) -> RemoteFile | None:
    """The weights ``timm.create_model(name, pretrained=True)`` downloads, or None when timm
    publishes none for ``name``."""
    import timm
    from huggingface_hub import constants

    pretrained_cfg = timm.models.get_pretrained_cfg(name)
    if pretrained_cfg is None:
        return None

    def fetch() -> None:
        timm.create_model(name, pretrained=True)

    if pretrained_cfg.hf_hub_id:
        repo = pretrained_cfg.hf_hub_id
        files = (pretrained_cfg.hf_hub_filename,) if pretrained_cfg.hf_hub_filename else HUB_WEIGHT_FILES
        return RemoteFile(f"timm weights {repo}", f"{constants.ENDPOINT}/{repo}/resolve/main/{files[0]}",
                          hub_cache_dir(), lambda: hub_cached(repo, files), fetch, hub=True)
    if pretrained_cfg.url:
        return RemoteFile(f"timm weights of {name}", pretrained_cfg.url, torch_hub_dir(),
                          lambda: url_cached(pretrained_cfg.url), fetch)
    return None


def torchvision_weights(name: str) -> RemoteFile:
    """The weights ``torchvision.models.get_model(name, weights="DEFAULT")`` downloads."""
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT

    def fetch() -> None:
        weights.get_state_dict(progress=True)

    return RemoteFile(f"torchvision weights {weights}", weights.url, torch_hub_dir(),
                      lambda: url_cached(weights.url), fetch)
