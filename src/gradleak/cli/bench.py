"""`gradleak bench NAME`: another name for `gradleak run NAME` (the shipped configs).

The benchmarks are experiment configs like every paper table: one runner, one seed rule,
one record format. ``gradleak bench labels --quick`` is ``gradleak run labels --quick``.
"""

from __future__ import annotations

from gradleak.cli.run import add_arguments, run

__all__ = ["add_arguments", "run"]
