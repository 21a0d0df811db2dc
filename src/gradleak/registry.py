"""One registry type for everything chosen by name: methods, attacks, defenses, families,
suites, models, datasets, variants.

A key is kebab-case ("fast-search", "gaussian-noise") and is the same string in configs, CLI
flags, record columns and docs. Registering a key twice is an error; asking for an unknown
key lists the known ones; `build` checks keyword parameters against the entry's signature,
so a typo is an error naming the parameter and what is accepted.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_KEY = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


class Registry(Generic[T]):
    """Kebab-case key -> entry (a class, a function or a value), for one ``kind`` of thing."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def check_new(self, key: str) -> None:
        """Refuse a key that is not kebab-case or already taken."""
        if not isinstance(key, str) or not _KEY.match(key):
            raise ValueError(
                f"{self.kind} key must be kebab-case (e.g. 'fast-search'), got {key!r}"
            )
        if key in self._entries:
            raise ValueError(f"{self.kind} {key!r} is registered twice")

    def add(self, key: str, entry: T) -> T:
        """Register ``entry`` under ``key``; returns it."""
        self.check_new(key)
        self._entries[key] = entry
        return entry

    def register(self, key: str) -> Callable[[T], T]:
        """Decorator form of `add`; a registered class gets ``key`` as its ``key`` attribute."""
        self.check_new(key)

        def decorate(entry: T) -> T:
            self.add(key, entry)
            if inspect.isclass(entry):
                entry.key = key  # type: ignore[attr-defined]
            return entry

        return decorate

    def __getitem__(self, key: str) -> T:
        try:
            return self._entries[key]
        except (KeyError, TypeError):
            raise ValueError(
                f"{self.kind} {key!r} is unknown; choose one of {', '.join(self.keys())}"
            ) from None

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[str]:
        """Keys in registration order."""
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def build(self, key: str, **params: Any) -> Any:
        """Call (instantiate) the entry ``key`` with ``params``, refusing unknown parameters."""
        entry = self[key]
        check_parameters(entry, params, where=f"{self.kind} {key!r}")
        return entry(**params)  # type: ignore[operator]

    def describe(self) -> list[tuple[str, str]]:
        """(key, first docstring line) for ``--help`` texts and docs."""
        return [(key, summary(entry)) for key, entry in self._entries.items()]


def summary(entry: Any) -> str:
    """The first sentence of an entry's docstring, without its full stop, as plain text for
    ``--help`` (empty when it has none): the first paragraph on one line, RST literals
    unquoted."""
    doc = inspect.getdoc(entry) or ""
    paragraph = " ".join(doc.split("\n\n")[0].split()).replace("``", "")
    sentence = paragraph.split(". ")[0]
    return sentence.rstrip(".")


@functools.cache
def _signature(entry: Callable[..., Any]) -> inspect.Signature:
    """``entry``'s signature, read once: `Registry.build` runs per recovery, and reading a
    signature costs as much as a small recovery's search step."""
    return inspect.signature(entry)


def check_parameters(entry: Callable[..., Any], params: dict[str, Any], *, where: str) -> None:
    """Refuse keyword ``params`` that ``entry``'s signature does not accept."""
    signature = _signature(entry)
    if any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        return
    accepted = [
        name
        for name, parameter in signature.parameters.items()
        if parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD)
    ]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(
            f"{where} got unknown parameters {unknown}; it accepts {', '.join(accepted) or 'none'}"
        )
