"""Find a dataset's folder and files on disk, with errors that say what to put where.

Nothing is ever downloaded: a missing folder or file is a ``FileNotFoundError`` naming the
expected layout, where to get the files and how to point gradleak at them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gradleak.parameter_hints import Hint, MissingDataError

#: How a user passes a dataset folder, in every "not found" message: ``root=PATH`` in Python,
#: each command's own flag on the command line (`gradleak.parameter_hints`).
ROOT = Hint("root", "root=PATH")


def require_folder(folder: Path, *, dataset: str, layout: str, source: str) -> Path:
    """Return ``folder`` if it is a directory, else raise an error describing ``layout``.

    Shapes: not applicable.
    """
    if not folder.is_dir():
        raise MissingDataError(
            f"{dataset}: folder {folder} not found; expected {layout}. {source}; "
            "then pass its folder with ",
            ROOT,
            ". Nothing is downloaded.",
        )
    return folder


def find_file(folder: Path, candidates: Sequence[str], *, dataset: str, source: str) -> Path:
    """The first of ``candidates`` (file names, in order of preference) present in ``folder``.

    Shapes: not applicable.
    """
    for name in candidates:
        path = folder / name
        if path.is_file():
            return path
    wanted = " or ".join(candidates)
    raise MissingDataError(
        f"{dataset}: {wanted} not found in {folder}. {source}; then pass its folder with ",
        ROOT,
        ". Nothing is downloaded.",
    )
