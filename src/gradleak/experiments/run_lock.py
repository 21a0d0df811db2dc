"""One gradleak run per run folder at a time: an exclusive lock on ``RUN/.lock``.

Two runs appending to one ``records.jsonl`` (a run and a concurrent ``--resume``) would record
the same trials twice. The lock is ``flock`` on ``RUN/.lock``, taken without waiting and held
for the whole run; the file holds the holder's pid so the refusal can name it. The kernel
drops the lock when its holder exits, however it exits, so a crash never leaves a stale lock.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK = ".lock"


class RunInUseError(BlockingIOError):
    """Another process holds the run folder's lock."""


def _holder(handle: int) -> str:
    text = os.pread(handle, 64, 0).decode(errors="replace").strip()
    return text if text.isdigit() else "unknown"


@contextmanager
def hold_run_lock(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold ``folder/.lock`` exclusively (with this pid in it) for the ``with`` block.

    Raises RunInUseError, naming the holder's pid, when another process holds it.
    """
    folder = Path(folder)
    path = folder / LOCK
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunInUseError(
                f"{folder} is in use by another gradleak run (pid {_holder(handle)}); wait "
                "for it to finish (or stop it), then --resume"
            ) from None
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(handle)  # closing the last descriptor releases the lock
