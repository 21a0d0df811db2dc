"""Each command's flags for the library parameters its errors may name (`parameter_hints`).

Where a command adds a flag that sets a library parameter, it declares the pair here
(``root`` -> ``--data-root PATH``); `main` prints a hinted error with the command's flags, so
``gradleak`` never tells a user to ``pass root=PATH``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

#: The namespace attribute that carries a command's parameter -> flag map.
DEST = "parameter_flags"


def declare(parser: argparse.ArgumentParser, **flags: str) -> None:
    """Add ``parameter=flag`` spellings to ``parser``'s, keeping those declared before."""
    parser.set_defaults(**{DEST: {**(parser.get_default(DEST) or {}), **flags}})


def flags_of(args: argparse.Namespace) -> Mapping[str, str]:
    """The parameter -> flag map of the command that parsed ``args`` (empty if none)."""
    return getattr(args, DEST, None) or {}
