"""Shared test setup: caches go to a temporary folder, torch stays on few threads."""

import os
import tempfile

import torch

os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="gradleak-mpl-"))
torch.set_num_threads(min(2, torch.get_num_threads()))
