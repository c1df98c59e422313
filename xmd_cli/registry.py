"""Registry: one way to say "which thing to build for this name", for every kind of part.

Teachers, quality scorers, students, evaluation tasks and dataset adapters are
each chosen by a name in the recipe. Each family keeps one `Registry`; an entry is
the object itself or a "module:attribute" string imported on first use, so that
`xmd --help` never imports torch or facenet just to list the names.

>>> shapes = Registry("shape", key="data.shape")
>>> shapes.add("circle", "math:pi")
>>> shapes.add("square", 4)
>>> shapes.names
('circle', 'square')
>>> shapes.get("square")
4
>>> round(shapes.get("circle"), 2)
3.14
>>> shapes.get("hexagon")
Traceback (most recent call last):
...
xmd_cli.errors.XmdError: data.shape 'hexagon' is not known; use one of: circle, square
"""

from __future__ import annotations

import importlib
from typing import Any, Generic, Iterator, TypeVar

from xmd_cli.errors import XmdError

T = TypeVar("T")


class Registry(Generic[T]):
    """Names -> parts of one family, resolved lazily; unknown names are a user error naming `key`."""

    def __init__(self, family: str, *, key: str):
        self.family = family
        self.key = key  # the recipe key or flag a user sets, for error messages
        self._entries: dict[str, Any] = {}

    def add(self, name: str, entry: T | str) -> None:
        if name in self._entries:
            raise ValueError(f"{self.family} {name!r} is registered twice")
        self._entries[name] = entry

    def register(self, name: str):
        """Decorator form of `add`, for classes and functions defined where they are registered."""
        def decorate(entry: T) -> T:
            self.add(name, entry)
            return entry
        return decorate

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise XmdError(f"{self.key} {name!r} is not known; use one of: {', '.join(self._entries)}")
        entry = self._entries[name]
        if isinstance(entry, str) and ":" in entry:
            module, attribute = entry.split(":")
            entry = getattr(importlib.import_module(module), attribute)
            self._entries[name] = entry
        return entry
