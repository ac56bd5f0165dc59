"""Published (hub) weights: the one-line error when they cannot be fetched."""

from __future__ import annotations

from visionlab.errors import first_line


def download_failure_message(name: str, err: Exception) -> str:
    """The message shown when ``name``'s published weights cannot be downloaded."""
    return (
        f"the pretrained weights for '{name}' could not be downloaded (offline?): "
        f"{first_line(err)}; "
        "set backbone.pretrained=false to train from scratch or backbone.weights=<file> "
        "to load a local file"
    )
