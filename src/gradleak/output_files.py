"""Writing files without losing what was there: atomic replacement and output checks up front.

Every file gradleak rewrites (records, manifests, checkpoints, observations, tables) goes
through `atomic_target`: the new content is written to a temporary file in the same folder,
flushed to disk (fsync), then moved over the old name with ``os.replace``, which is atomic on
POSIX file systems. A crash at any moment leaves either the old file or the new one, never a
torn or empty one. `check_new_file` and `check_new_folder` run before any work starts, so an
output that cannot be written is an error in the first second, not after the computation.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gradleak.parameter_hints import Hint, OutputExistsError


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX: the directory entry lives in the folder)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:  # some file systems do not allow opening a folder; the rename still holds
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


@contextmanager
def atomic_target(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit it replaces ``path`` atomically.

    The caller writes the whole new content to the yielded path (any writer: safetensors,
    ``open``...). On an exception the temporary file is removed and ``path`` is untouched.
    The result gets the usual permissions (0666 minus the umask), not mkstemp's 0600.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    handle, name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".part")
    os.close(handle)
    partial = Path(name)
    try:
        yield partial
        with partial.open("rb+") as stream:
            os.fsync(stream.fileno())
        os.chmod(partial, 0o666 & ~_umask())
        os.replace(partial, path)
        _fsync_folder(folder)
    finally:
        if partial.exists():
            partial.unlink()


def write_atomic(path: str | os.PathLike[str], content: str | bytes) -> Path:
    """Replace ``path`` with ``content`` (text as UTF-8) atomically; returns the path."""
    data = content.encode() if isinstance(content, str) else content
    with atomic_target(path) as partial:
        partial.write_bytes(data)
    return Path(path)


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (what a mkdir -p would write into)."""
    current = path.absolute()
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def _check_writable_parent(path: Path, name: str) -> None:
    ancestor = _nearest_existing(path.parent)
    if not ancestor.is_dir():
        raise NotADirectoryError(f"{name} {path}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PermissionError(f"{name} {path}: the folder {ancestor} is not writable")


def check_new_file(
    path: str | os.PathLike[str],
    *,
    name: str,
    overwrite: bool = False,
    overwrite_flag: str = "overwrite=True",
    suffix: str | None = None,
) -> Path:
    """Check, before any work, that ``path`` can be written as a new (or replaced) file.

    ``name`` is how the caller calls the argument in messages (``--out`` on the command line,
    ``path`` in the library), ``overwrite_flag`` how a Python caller asks to replace an existing
    file (a command shows its own flag: the error's hint is keyed ``overwrite``).
    Raises ValueError (wrong suffix), IsADirectoryError, FileExistsError or PermissionError.
    """
    path = Path(path)
    if suffix is not None and path.suffix != suffix:
        raise ValueError(f"{name} must end in {suffix}, got {str(path)!r}")
    if path.is_dir():
        raise IsADirectoryError(f"{name} {path} is a folder; expected a file path")
    if path.exists() and not overwrite:
        raise OutputExistsError(
            f"{name} {path} exists; pass ", Hint("overwrite", overwrite_flag), " to replace it"
        )
    if path.exists() and not os.access(path, os.W_OK):
        raise PermissionError(f"{name} {path} exists and is not writable")
    _check_writable_parent(path, name)
    return path


def check_new_folder(path: str | os.PathLike[str], *, name: str) -> Path:
    """Check, before any work, that ``path`` does not exist and can be created.

    Raises FileExistsError (nothing is ever overwritten) or PermissionError.
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{name} {path} exists; choose a new folder (nothing is overwritten)")
    _check_writable_parent(path, name)
    return path
