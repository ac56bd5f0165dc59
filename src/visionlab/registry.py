"""Names to the things they build, filled by definition (the way timm's ``@register_model`` is):
model kinds, GAN losses, GAN generators and discriminators, custom backbone families.

A new entry is one decorated definition in any module; nothing else lists it. A miss is one line
naming the setting, the value and the valid names. A dotted name (``mypackage.nets.tiny_cnn``)
imports its module first, so an entry defined outside visionlab is found by the name its config
gives.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

from visionlab.errors import UserError

T = TypeVar("T")


class Registry(Mapping[str, T]):
    """Names to entries of one kind (``what``: "GAN loss", "model kind"...), read as a mapping."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: the decorated class or function is the entry called ``name``."""
        def add(entry: T) -> T:
            self._entries[name] = entry
            return entry

        return add

    def lookup(self, name: str, setting: str) -> T:
        """The entry called ``name``. A dotted name (``package.module.entry``) imports its module
        first, whose definitions register themselves, and is then looked up whole or by its last
        part. A UserError naming ``setting`` and the valid names otherwise."""
        if name not in self._entries and "." in name:
            module, short = name.rsplit(".", 1)
            try:
                importlib.import_module(module)
            except ImportError as err:
                raise UserError(f"{setting}={name!r}: its module cannot be imported "
                                f"({str(err).splitlines()[0]})") from None
            name = name if name in self._entries else short
        if name not in self._entries:
            raise UserError(f"{setting}={name!r} is not one of: {', '.join(self._entries)}")
        return self._entries[name]

    def discard(self, name: str) -> None:
        """Forget ``name`` (a notebook redefining an entry; a test acting as a fresh process)."""
        self._entries.pop(name, None)

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
