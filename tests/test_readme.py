"""Every Python block of README.md runs as written, in order, in one namespace.

The long budgets (4800 Adam steps x 10 restarts, DLG's L-BFGS) run small here; each
substitution must match the README, so a changed snippet cannot silently skip its budget cut.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

#: README text -> what runs instead (same calls, a budget of seconds).
SMALL_BUDGET = {
    "iterations=4800": "iterations=3",
    "restarts=10": "restarts=2",
    "iterations=200)": "iterations=3)",
    'attack="dlg")': 'attack="dlg", iterations=3)',
}


def python_blocks(text: str) -> list[str]:
    """The ```python fenced blocks of a Markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def with_small_budget(blocks: list[str]) -> list[str]:
    joined = "\n# ---- next block ----\n".join(blocks)
    for long, short in SMALL_BUDGET.items():
        assert long in joined, f"README no longer contains {long!r}: update SMALL_BUDGET"
        joined = joined.replace(long, short)
    return joined.split("\n# ---- next block ----\n")


def test_readme_python_blocks_are_found():
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 6
    assert any("gradleak.recover_label(" in block for block in blocks)


def test_readme_python_blocks_run_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a snippet's output files (audit.jsonl) land here
    namespace: dict = {"__name__": "readme"}
    skipped = []
    for index, block in enumerate(with_small_budget(python_blocks(README.read_text("utf-8")))):
        if '"fashion-mnist"' in block and not FASHION_MNIST.is_dir():
            skipped.append(index)
            continue
        code = compile(block, f"README.md python block {index}", "exec")
        exec(code, namespace)  # the README's own snippets
    # what the README says the snippets do: the SGD update's label, the batch, FCN-4's input
    assert namespace["estimate"].converged and namespace["estimate"].family == "smoothing"
    assert namespace["batch"].converged and namespace["batch"].num_samples == 4
    fcn_input = namespace["fcn_secret"].inputs
    assert (namespace["rec"].inputs - fcn_input).abs().max() <= 1e-4 * fcn_input.abs().max()
    if skipped:
        pytest.skip(f"blocks {skipped} need Debian's dataset-fashion-mnist")
