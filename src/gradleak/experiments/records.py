"""Reading a run folder (manifest and records), telling crash artefacts from damage.

The runner appends each trial's records in one write, so a crash can leave only two things:
a torn last line of ``records.jsonl`` (no trailing newline, or not JSON) and a trial with only
some of its records. Both are expected: the torn line is skipped with a warning and an
incomplete trial runs again on ``--resume``. Anything else (a bad line before the last, a
manifest that is not JSON) is damage: an error naming the file and line, the file untouched.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
RECORDS = "records.jsonl"
JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordLine:
    """One record as it is in the file: its 1-based line ``number`` and exact ``text``."""

    number: int
    text: str
    record: dict[str, Any]


@dataclass(frozen=True)
class RecordsFile:
    """The records of ``path`` in file order. ``torn_line``: the skipped torn last line, if
    any; ``exact``: the file is exactly ``lines``, each ending in a newline (nothing dropped)."""

    path: Path
    lines: tuple[RecordLine, ...] = ()
    torn_line: int | None = None
    exact: bool = True

    @property
    def records(self) -> list[dict[str, Any]]:
        return [line.record for line in self.lines]


@dataclass(frozen=True)
class CompleteTrials:
    """(case, trial) pairs whose records are all present, and the lines that hold them."""

    keys: frozenset[tuple[str, int]]
    lines: tuple[RecordLine, ...]


@dataclass(frozen=True)
class RunRecords:
    """What `gradleak report` reads: the manifest and the records, each (case, trial,
    method/variant) once. ``duplicates``: later repeats that were left out."""

    folder: Path
    manifest: dict[str, Any]
    records: tuple[dict[str, Any], ...]
    duplicates: int = 0
    torn_line: int | None = None


def _kind(value: Any) -> str:
    return JSON_TYPES.get(type(value), "number")


def _decode(raw: bytes) -> tuple[Any, str | None]:
    """The JSON value of one line, or why it is not JSON."""
    try:
        return json.loads(raw.decode("utf-8")), None
    except UnicodeDecodeError as error:
        return None, f"not UTF-8 text: {error.reason}"
    except json.JSONDecodeError as error:
        return None, f"not JSON: {error.msg}"


def _why_not_a_record(value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"a JSON {_kind(value)}, expected an object with 'case' and 'trial'"
    if not isinstance(value.get("case"), str):
        return "no text 'case'"
    trial = value.get("trial")
    if not isinstance(trial, int) or isinstance(trial, bool) or trial < 0:
        return f"'trial' must be an integer >= 0, got {trial!r}"
    count = value.get("trial_records", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        return f"'trial_records' must be an integer >= 1, got {count!r}"
    return None


def parse_records(path: str | Path) -> RecordsFile:
    """Read and validate a records file (a missing file has no records).

    Raises IsADirectoryError, or ValueError naming the file and line for damage.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; expected the run's records (JSON lines)")
    if not path.exists():
        return RecordsFile(path)
    pieces = path.read_bytes().split(b"\n")
    unterminated = pieces.pop()  # b"" when the file ends with a newline
    numbered = [(number, raw) for number, raw in enumerate(pieces, 1) if raw.strip()]
    exact = len(numbered) == len(pieces) and not unterminated
    torn = None
    if unterminated.strip():
        torn = len(pieces) + 1
    elif numbered and _decode(numbered[-1][1])[1] is not None:
        torn = numbered.pop()[0]
    lines = []
    for number, raw in numbered:
        value, error = _decode(raw)
        why = error or _why_not_a_record(value)
        if why is not None:
            kind = "" if error else "not a record: "
            raise ValueError(
                f"{path}, line {number}: {kind}{why}. Only a torn last line is a crash "
                "artefact; this is damage, so the file is left as it is: repair or remove "
                "that line, then run again"
            )
        lines.append(RecordLine(number, raw.decode("utf-8"), value))
    if torn is not None:
        logger.warning("%s: skipped line %d, torn by a crash while it was written", path, torn)
    return RecordsFile(path, tuple(lines), torn, exact and torn is None)


def complete_trials(records: RecordsFile) -> CompleteTrials:
    """The trials with all their ``trial_records`` lines present (a record without that field
    counts its trial as complete)."""
    groups: dict[tuple[str, int], list[RecordLine]] = {}
    for line in records.lines:
        groups.setdefault((line.record["case"], line.record["trial"]), []).append(line)
    keys = frozenset(
        key
        for key, lines in groups.items()
        if len(lines) == lines[0].record.get("trial_records", len(lines))
    )
    kept = tuple(
        line for line in records.lines if (line.record["case"], line.record["trial"]) in keys
    )
    return CompleteTrials(keys, kept)


def record_key(record: dict[str, Any]) -> tuple[Any, ...]:
    """What identifies a record: case, trial, and method or variant and gradient-scale mode
    where the suite has them (a label trial runs each method at every listed scale)."""
    return (
        record["case"],
        record["trial"],
        record.get("method"),
        record.get("variant"),
        record.get("scale"),
    )


def unique_records(records: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The first record of each `record_key`, and how many repeats were left out."""
    seen: set[tuple[Any, ...]] = set()
    unique, repeats = [], 0
    for record in records:
        key = record_key(record)
        if key in seen:
            repeats += 1
        else:
            seen.add(key)
            unique.append(record)
    return unique, repeats


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of a `gradleak run` folder, checked: FileNotFoundError, NotADirectoryError,
    IsADirectoryError or ValueError naming the folder or file."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.exists():
        raise FileNotFoundError(f"{folder} does not exist")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file, not a run folder")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; expected the run's manifest (JSON)")
    if not path.exists():
        raise FileNotFoundError(f"{folder} has no {MANIFEST}: it is not a gradleak run folder")
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not JSON ({error}); it is left as it is") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"{path} must hold a JSON object, got a JSON {_kind(manifest)}")
    if "config" not in manifest:
        if isinstance(manifest.get("suite"), str):
            raise ValueError(
                f"{folder} was written by `gradleak bench {manifest['suite']}`, not `gradleak "
                f"run`: bench writes its own table ({folder / 'table.md'}); `gradleak report` "
                "and `--resume` read folders written by `gradleak run`"
            )
        raise ValueError(f"{path} has no 'config': it was not written by `gradleak run`")
    config = manifest["config"]
    if not isinstance(config, dict) or not isinstance(config.get("suite"), str):
        raise ValueError(f"{path}: 'config' must be an object with a text 'suite'")
    if not isinstance(manifest.get("runs", []), list):
        raise ValueError(f"{path}: 'runs' must be a list")
    return manifest


def read_run(folder: str | Path) -> RunRecords:
    """Manifest and records of a run folder; a torn last line is skipped and repeated records
    (two runs into one folder) are kept once, each with a warning."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    parsed = parse_records(folder / RECORDS)
    records, duplicates = unique_records(parsed.records)
    if duplicates:
        logger.warning(
            "%s: %d duplicate records (same case, trial and method/variant as an earlier "
            "one, from two runs into one folder); the first of each is kept",
            parsed.path,
            duplicates,
        )
    return RunRecords(folder, manifest, tuple(records), duplicates, parsed.torn_line)
