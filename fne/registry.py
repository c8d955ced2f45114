"""One registry type for everything users plug in: search spaces, heuristics, mutations, ops.

Modelled on timm's `register_model` / `list_models` (`timm/models/_registry.py`) and NASLib's
`@measure(name, bn=..., copy_net=...)`: a decorator files an entry under a name, optionally with metadata
that says what the entry needs; a second entry under the same name is refused; looking up a name nobody
registered is a ConfigError that lists the known ones. A registry reads like a read-only dict::

    SPACES = Registry("search space")

    @SPACES.register("chain", needs_widths=False)
    class ChainSpace(SearchSpace): ...

    SPACES["chain"], "chain" in SPACES, list(SPACES), SPACES.names(), SPACES.meta("chain")
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from fne.errors import ConfigError

T = TypeVar("T")


class UnknownNameError(ConfigError, KeyError):
    """A registry has no entry of this name (also a KeyError, so dict-style callers keep working)."""

    def __str__(self) -> str:
        # KeyError would print the message in quotes; the CLI prints it as a sentence.
        return str(self.args[0]) if self.args else ""


class Registry(Mapping[str, T], Generic[T]):
    """Name -> entry in registration order, filled by `register`; refuses duplicate names."""

    def __init__(self, kind: str):
        self.kind = kind  # what an entry is, for error messages ("search space", "heuristic", ...)
        self._entries: dict[str, T] = {}
        self._meta: dict[str, Mapping[str, Any]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        """Decorator: file the decorated object under `name` with `meta`, and return it unchanged."""

        def decorate(entry: T) -> T:
            self.add(name, entry, **meta)
            return entry

        return decorate

    def add(self, name: str, entry: T, **meta: Any) -> T:
        """File `entry` under `name` with `meta`; ConfigError if the name is taken or not a string."""
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"a {self.kind} needs a non-empty string name, got {name!r}")
        if name in self._entries:
            raise ConfigError(f"{self.kind} {name!r} is already registered; unregister it first or choose another "
                              "name")
        self._entries[name] = entry
        self._meta[name] = MappingProxyType(dict(meta))
        return entry

    def unregister(self, name: str) -> T:
        """Remove and return the entry `name` (for tests and plug-ins); UnknownNameError if absent."""
        entry = self[name]
        del self._entries[name], self._meta[name]
        return entry

    def names(self) -> tuple[str, ...]:
        """Registered names in registration order."""
        return tuple(self._entries)

    def meta(self, name: str) -> Mapping[str, Any]:
        """The metadata `name` was registered with (read-only)."""
        self[name]  # the same error as a lookup for an unknown name
        return self._meta[name]

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            known = ", ".join(self._entries) or "none registered"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._entries
        except TypeError:  # an unhashable key is simply not a name
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
