"""Shared test setup: caches go to a temporary folder, torch stays on few threads."""

import os
import tempfile
from pathlib import Path

import pytest
import torch

os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="gradleak-mpl-"))
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def read_only(monkeypatch):
    """``read_only(folder)`` makes ``folder`` unwritable, also for root (who ignores
    permission bits), by answering os.access's write check with False inside it."""

    def make(folder: Path) -> None:
        real = os.access

        def access(path, mode, *args, **kwargs):
            inside = Path(path).absolute().is_relative_to(folder.absolute())
            return False if inside and mode & os.W_OK else real(path, mode, *args, **kwargs)

        monkeypatch.setattr(os, "access", access)

    return make
