"""Per-trial seeds from (root seed, experiment, case, trial), stable across runs and machines.

Python's ``hash`` is salted per process, so names are hashed with CRC-32 and mixed by NumPy's
``SeedSequence``: the same four inputs give the same seed in any process, on any worker, in
any order, which is what lets interrupted runs resume and parallel runs agree.
"""

from __future__ import annotations

import zlib

import numpy as np


def trial_seed(root: int, experiment: str, case: str, trial: int) -> int:
    """A 32-bit seed for one trial. Shapes: not applicable."""
    if root < 0 or trial < 0:
        raise ValueError(f"root seed and trial must be >= 0, got {root} and {trial}")
    entropy = [root, zlib.crc32(experiment.encode()), zlib.crc32(case.encode()), trial]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])
