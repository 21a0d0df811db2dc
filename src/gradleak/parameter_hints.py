"""Errors whose remedy is one parameter, spelled for whoever reads them: Python or a CLI flag.

The library names the keyword a Python caller sets (``root=PATH``, ``overwrite=True``); the same
error seen through ``gradleak`` must name that command's flag instead (``--data-root PATH``;
``--set defaults.data_root=PATH`` for ``gradleak run``). Such an error keeps its message in
parts, each remedy a `Hint` keyed by parameter name, and `spelled` renders it with a command's
map of parameter -> flag. The types stay subclasses of the built-in ones (FileNotFoundError,
FileExistsError), so callers catch them as before, and they survive pickling (worker
processes send them back to the runner).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Hint:
    """A remedy that names parameter ``parameter``; ``python`` is how a Python caller spells it
    (``"root=PATH"``)."""

    parameter: str
    python: str


class HintedError(Exception):
    """Mixin: an error whose message holds `Hint`s; ``str(error)`` spells them for Python."""

    def __init__(self, *parts: str | Hint) -> None:
        self.parts = parts
        super().__init__(self.spelled({}))

    def spelled(self, flags: Mapping[str, str]) -> str:
        """The message with each hint's parameter spelled by ``flags`` (parameter -> flag),
        or as Python spells it where ``flags`` has none."""
        return "".join(
            part if isinstance(part, str) else flags.get(part.parameter, part.python)
            for part in self.parts
        )

    def __reduce__(self) -> tuple[type, tuple[str | Hint, ...]]:
        return type(self), self.parts


class MissingDataError(HintedError, FileNotFoundError):
    """A dataset's folder or file is not where it was looked for."""


class OutputExistsError(HintedError, FileExistsError):
    """An output exists and would be replaced or reused only when asked."""


def spelled(error: BaseException, flags: Mapping[str, str]) -> str:
    """``error``'s message, its hints (if any) spelled by ``flags`` (parameter -> flag)."""
    return error.spelled(flags) if isinstance(error, HintedError) else str(error)
