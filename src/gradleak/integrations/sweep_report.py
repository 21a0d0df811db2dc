"""Tables and figures of a defense sweep: sweep.csv, sweep.md and the PNG figures
(leakage against epsilon, against test accuracy, and against each defense parameter)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path

from gradleak.integrations.sweep import SweepRow
from gradleak.output_files import atomic_target, write_atomic

COLUMNS = (
    "#",
    "params",
    "N",
    "labels recovered",
    "false accepts",
    "class leaked (iDLG)",
    "feature error (median)",
    "input PSNR (median)",
    "test accuracy",
    "epsilon",
    "refusals",
)


def _number(value: float | None, fmt: str) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    return format(value, fmt)


def _params(row: SweepRow) -> str:
    return ", ".join(
        f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
        for key, value in row.params.items()
    )


def cells(index: int, row: SweepRow) -> list[str]:
    refusals = "; ".join(f"{count} {kind}" for kind, count in row.refusals.items()) or "-"
    return [
        str(index),
        _params(row),
        str(row.samples),
        f"{row.labels_recovered:.2f}",
        str(row.false_accepts),
        f"{row.class_leaked:.2f}",
        _number(row.feature_error, ".1e"),
        _number(row.input_psnr, ".1f"),
        f"{row.test_accuracy:.3f}",
        _number(row.epsilon, ".3g"),
        refusals,
    ]


def markdown(rows: Sequence[SweepRow], title: str) -> str:
    lines = [f"# {title}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells(i, row)) + " |" for i, row in enumerate(rows, 1)]
    return "\n".join(lines) + "\n"


def _csv(rows: Sequence[SweepRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    writer.writerows(cells(i, row) for i, row in enumerate(rows, 1))
    return buffer.getvalue()


def _save(figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    with atomic_target(path) as partial:
        figure.savefig(partial, format="png", dpi=110)
    plt.close(figure)
    return path


#: The two leakage series: the class as hollow larger squares under the soft label's filled
#: circles, so that a point where both are equal shows both.
CLASS_STYLE = {"marker": "s", "color": "#ff7f0e", "markerfacecolor": "none", "markersize": 9}
LABEL_STYLE = {"marker": "o", "color": "#1f77b4", "markersize": 5, "zorder": 3}


def _leakage_axes(axes, xs, rows, label_suffix=""):
    axes.plot(
        xs,
        [r.class_leaked for r in rows],
        linestyle="--",
        label="class leaked (iDLG)" + label_suffix,
        **CLASS_STYLE,
    )
    axes.plot(
        xs,
        [r.labels_recovered for r in rows],
        linestyle="-",
        label="soft label recovered" + label_suffix,
        **LABEL_STYLE,
    )
    axes.set_ylim(-0.05, 1.05)
    axes.set_ylabel(f"rate over N = {rows[0].samples} inputs")


def figures(rows: Sequence[SweepRow], folder: Path, title: str) -> list[Path]:
    """leakage-vs-epsilon.png (when epsilon is finite somewhere), leakage-vs-accuracy.png, and
    leakage-vs-PARAM.png per parameter with more than one value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    finite = [r for r in rows if r.epsilon is not None and math.isfinite(r.epsilon)]
    if finite:
        finite.sort(key=lambda r: r.epsilon)
        figure, axes = plt.subplots(figsize=(5.5, 3.8))
        _leakage_axes(axes, [r.epsilon for r in finite], finite)
        axes.set_xscale("log")
        axes.set_xlabel("epsilon (Opacus RDP accountant)")
        unbounded = [r for r in rows if r.epsilon is not None and math.isinf(r.epsilon)]
        if unbounded:
            rates = ", ".join(f"{r.labels_recovered:.2f}" for r in unbounded)
            axes.text(
                0.02,
                0.5,
                f"not drawn: noise 0 (epsilon = inf),\nsoft label {rates}",
                transform=axes.transAxes,
                fontsize=7,
            )
        axes.set_title(title, fontsize=9)
        axes.legend(fontsize=8)
        written.append(_save(figure, folder / "leakage-vs-epsilon.png"))
    figure, axes = plt.subplots(figsize=(5.5, 3.8))
    for index, row in enumerate(rows, 1):
        axes.plot(row.test_accuracy, row.class_leaked, linestyle="none", **CLASS_STYLE)
        axes.plot(row.test_accuracy, row.labels_recovered, linestyle="none", **LABEL_STYLE)
        for value in (row.labels_recovered, row.class_leaked):
            axes.annotate(
                str(index),
                (row.test_accuracy, value),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
    axes.plot([], [], linestyle="none", label="soft label recovered", **LABEL_STYLE)
    axes.plot([], [], linestyle="none", label="class leaked (iDLG)", **CLASS_STYLE)
    axes.set_xlabel("test accuracy after the short training (numbers: rows of sweep.md)")
    axes.set_ylabel(f"rate over N = {rows[0].samples} inputs")
    axes.set_ylim(-0.05, 1.05)
    axes.set_title(title, fontsize=9)
    axes.legend(fontsize=8)
    written.append(_save(figure, folder / "leakage-vs-accuracy.png"))
    for name in rows[0].params:
        values = sorted({row.params[name] for row in rows}, key=str)
        if len(values) < 2:
            continue
        others = sorted({tuple((k, v) for k, v in r.params.items() if k != name) for r in rows})
        figure, axes = plt.subplots(figsize=(5.5, 3.8))
        numeric = all(isinstance(v, int | float) for v in values)
        for other in others:
            line = [
                r for r in rows if tuple((k, v) for k, v in r.params.items() if k != name) == other
            ]
            line.sort(key=lambda r: r.params[name] if numeric else str(r.params[name]))
            suffix = (" (" + ", ".join(f"{k}={v}" for k, v in other) + ")") if other else ""
            xs = [r.params[name] if numeric else str(r.params[name]) for r in line]
            _leakage_axes(axes, xs, line, suffix)
        if numeric and all(v >= 0 for v in values) and any(v > 0 for v in values):
            axes.set_xscale("symlog", linthresh=min(v for v in values if v > 0))
        axes.set_xlabel(name)
        axes.set_title(title, fontsize=9)
        axes.legend(fontsize=7)
        written.append(_save(figure, folder / f"leakage-vs-{name.replace('_', '-')}.png"))
    return written


def write(rows: Sequence[SweepRow], folder: Path, title: str) -> list[Path]:
    return [
        write_atomic(folder / "sweep.csv", _csv(rows)),
        write_atomic(folder / "sweep.md", markdown(rows, title)),
        *figures(rows, folder, title),
    ]


__all__ = ["markdown", "write"]
