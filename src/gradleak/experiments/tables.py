"""Tables as pure functions of benchmark records."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gradleak.output_files import write_atomic

#: The method every other one's median time is compared with, in the same table.
BASELINE = "fast-search"

COLUMNS = (
    "setting",
    "method",
    "scale",
    "N",
    "accuracy",
    "false accepts",
    "refused",
    "median ms",
    "p99 ms",
    "median / fast-search",
)


def read_records(path: Path) -> list[dict[str, Any]]:
    with path.open() as source:
        return [json.loads(line) for line in source if line.strip()]


def summarise(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (setting, method, gradient scale mode). Accuracy counts converged and
    correct answers; a false accept is converged but wrong; refused is not converged. Times
    are per recovery; the last column divides each median by fast-search's in the same
    setting, at the known scale when the setting runs both (so it also prices the unknown
    scale)."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for record in records:
        key = (record["case"], record["method"], record.get("scale", "known"))
        groups.setdefault(key, []).append(record)
    medians = {key: float(np.median([r["seconds"] for r in rows])) for key, rows in groups.items()}
    rows = []
    for (case, method, scale), trials in groups.items():
        seconds = np.array([r["seconds"] for r in trials])
        total = len(trials)
        baseline = medians.get((case, BASELINE, "known"), medians.get((case, BASELINE, "unknown")))
        rows.append(
            {
                "setting": case,
                "method": method,
                "scale": scale,
                "N": total,
                "accuracy": sum(r["converged"] and r["correct"] for r in trials) / total,
                "false accepts": sum(r["converged"] and not r["correct"] for r in trials) / total,
                "refused": sum(not r["converged"] for r in trials),
                "median ms": 1e3 * float(np.median(seconds)),
                "p99 ms": 1e3 * float(np.percentile(seconds, 99)),
                "median / fast-search": (
                    medians[(case, method, scale)] / baseline if baseline else None
                ),
            }
        )
    return rows


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if value < 1 or value != int(value) else f"{value:.0f}"
    return "-" if value is None else str(value)


def markdown(rows: list[dict[str, Any]], columns: Sequence[str] = COLUMNS) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row[column]) for column in columns) + " |")
    return "\n".join(lines) + "\n"


def write_csv(path: Path, rows: list[dict[str, Any]], columns: Sequence[str] = COLUMNS) -> Path:
    """``rows`` as CSV with the `csv` module (quoting any cell that holds a comma), atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_cell(row[column]) for column in columns] for row in rows)
    return write_atomic(path, buffer.getvalue())


def reason_head(reason: str) -> str:
    """A refusal's kind: its text up to the first colon or parenthesis, at most 60 characters."""
    head = reason.split(":")[0].split(" (")[0].strip()
    return head if len(head) <= 60 else head[:57] + "..."


def refusal_kinds(records: Iterable[dict[str, Any]]) -> str:
    """The refusal kinds of a row's unconverged records and how often each occurred, most
    frequent first ("-": none)."""
    kinds = Counter(reason_head(r["reason"]) for r in records if not r["converged"])
    return "; ".join(f"{count} {kind}" for kind, count in kinds.most_common()) or "-"
