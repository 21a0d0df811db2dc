"""The audit report of a simulation: every record scored against what the clients trained on.

Evaluation only, after the run: the audit's records (what the server concluded) are joined
with the truth files the simulated clients wrote (their soft labels and inputs, never read by
the audit). A recovered label counts as correct when it is within l1 1e-2 of a true one
(batches: after optimal assignment, `match_labels`); one that is not is a false accept. An
input counts by its PSNR against the true one. Writes ``audit.csv`` (one row per record),
``report.md`` (the tables) and ``audit.png`` (per round: updates leaked / refused; one
recovered label against its truth).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from gradleak.integrations.audit import AuditRecord, refusal_kind
from gradleak.integrations.flower.strategy import AGGREGATE, RoundTiming
from gradleak.metrics.assignment import match_labels
from gradleak.metrics.images import psnr, to_unit_range
from gradleak.output_files import atomic_target, write_atomic

#: A recovered label within this l1 of a true one is correct (the benchmarks' threshold).
SUCCESS_L1 = 1e-2


@dataclass(frozen=True)
class ScoredRecord:
    """One record and its evaluation: ``correct`` samples, ``false_accepts`` (recovered but
    matching no true label), ``input_psnr`` (the input attack, dB; inf when exact)."""

    round: int
    client: str
    attack: str
    num_samples: int
    leaked: bool
    correct: int
    false_accepts: int
    input_psnr: float | None
    epsilon: float | None
    seconds: float
    reason: str


def read_truth(folder: Path) -> dict[tuple[int, str], dict]:
    """The clients' truth files by (round, node id)."""
    truth = {}
    for path in sorted(folder.glob("round-*-node-*.json")):
        entry = json.loads(path.read_text())
        truth[int(entry["round"]), str(entry["node"])] = entry
    return truth


def _rows(entries: list[dict], key: str) -> np.ndarray:
    return np.concatenate([np.asarray(step, dtype=np.float64) for e in entries for step in e[key]])


def score(records: list[AuditRecord], truth: dict[tuple[int, str], dict]) -> list[ScoredRecord]:
    """Every record scored against the truth of its client (or, for the aggregate, of every
    client of its round)."""
    scored = []
    for record in records:
        if record.client == AGGREGATE:
            entries = [entry for (r, _node), entry in truth.items() if r == record.round]
        else:
            entries = [truth[key]] if (key := (record.round, record.client)) in truth else []
        correct = false = 0
        image_psnr = None
        found = np.asarray(record.labels, dtype=np.float64)
        if record.leaked and found.size and entries:
            true_labels = _rows(entries, "labels")
            ones = np.ones((true_labels.shape[0], 1))
            _r, _c, l1 = match_labels(found, true_labels, np.zeros((found.shape[0], 1)), ones)
            correct = int((l1 < SUCCESS_L1).sum())
            false = int(found.shape[0]) - correct
        if record.attack == "input" and record.leaked and entries and record.estimate:
            entry = entries[0]
            true_input = torch.tensor(entry["inputs"][0], dtype=torch.float64)
            found_input = torch.tensor(record.estimate["inputs"], dtype=torch.float64)
            found_input = found_input.reshape(true_input.shape)
            image_psnr = float(
                psnr(
                    to_unit_range(found_input, entry["mean"], entry["std"]),
                    to_unit_range(true_input, entry["mean"], entry["std"]),
                )[0]
            )
        scored.append(
            ScoredRecord(
                record.round,
                record.client,
                record.attack,
                record.num_samples,
                record.leaked,
                correct,
                false,
                image_psnr,
                record.epsilon,
                record.seconds,
                record.reason,
            )
        )
    return scored


def client_names(records: list[ScoredRecord]) -> dict[str, str]:
    """Short names (client 1, 2, ... by node id) for the long Flower node ids."""
    nodes = sorted({record.client for record in records} - {AGGREGATE}, key=int)
    return {node: f"client {index}" for index, node in enumerate(nodes, 1)} | {AGGREGATE: AGGREGATE}


def _psnr_text(value: float | None) -> str:
    if value is None:
        return "-"
    return "exact" if math.isinf(value) else f"{value:.1f}"


def tables(scored: list[ScoredRecord], timings: list[RoundTiming], title: str) -> str:
    """The report as Markdown: the summary, refusals by reason, timings, and every record."""
    names = client_names(scored)
    clients = [record for record in scored if record.client != AGGREGATE]
    aggregate = [record for record in scored if record.client == AGGREGATE]
    updates = {(record.round, record.client) for record in clients}
    leaked = {(record.round, record.client) for record in clients if record.leaked}
    refusals = Counter(refusal_kind(record.reason) for record in scored if not record.leaked)
    lines = [f"# {title}", "", "| what | value |", "|---|---|"]
    lines += [
        f"| client updates audited | {len(updates)} |",
        f"| updates that leaked | {len(leaked)} |",
        f"| labels recovered (correct) | {sum(r.correct for r in clients)} |",
        f"| false accepts | {sum(r.false_accepts for r in scored)} |",
        f"| inputs recovered | {sum(r.attack == 'input' and r.leaked for r in clients)} |",
        f"| aggregates that leaked | {sum(r.leaked for r in aggregate)} of "
        f"{len({r.round for r in aggregate})} |",
    ]
    epsilons = [r.epsilon for r in clients if r.epsilon is not None]
    if epsilons:
        lines.append(f"| largest epsilon a client reported (delta 1e-5) | {max(epsilons):.3g} |")
    lines.append("")
    if refusals:
        lines += ["| refusals | reason (in full per record below) |", "|---|---|"]
        lines += [f"| {count} | {reason} |" for reason, count in refusals.most_common()]
        lines.append("")
    if timings:
        lines += ["| round | clients' round (s) | audit (s) |", "|---|---|---|"]
        lines += [f"| {t.round} | {t.round_seconds:.2f} | {t.audit_seconds:.2f} |" for t in timings]
        lines.append("")
    header = ("round", "client", "attack", "B", "leaked", "correct", "false accepts")
    header += ("input PSNR", "epsilon", "s", "reason")
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in scored:
        lines.append(
            f"| {r.round} | {names[r.client]} | {r.attack} | {r.num_samples} | "
            f"{'yes' if r.leaked else 'no'} | {r.correct} | {r.false_accepts} | "
            f"{_psnr_text(r.input_psnr)} | {'-' if r.epsilon is None else f'{r.epsilon:.3g}'} | "
            f"{r.seconds:.3f} | {r.reason or '-'} |"
        )
    return "\n".join(lines) + "\n"


def _csv(rows: list, row_type: type) -> str:
    """Rows of a dataclass ``row_type`` (ScoredRecord, RoundTiming) as CSV, a column a field."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(row_type.__dataclass_fields__))
    writer.writeheader()
    for row in rows:
        writer.writerow(asdict(row))
    return buffer.getvalue()


def figure(
    scored: list[ScoredRecord], records: list[AuditRecord], truth: dict, path: Path, title: str
) -> Path:
    """Per round, the client updates that leaked and those refused; beside it one recovered
    label against the true one (the first leaked client update)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = sorted({record.round for record in scored})
    clients = [record for record in scored if record.client != AGGREGATE]
    leaked = [len({r.client for r in clients if r.round == n and r.leaked}) for n in rounds]
    total = [len({r.client for r in clients if r.round == n}) for n in rounds]
    figure_, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.bar(rounds, total, color="#cccccc", label="updates audited")
    left.bar(rounds, leaked, color="#d62728", label="leaked their labels")
    left.set_xlabel("round")
    left.set_ylabel("client updates")
    left.set_xticks(rounds)
    left.legend(loc="lower right")
    left.set_title(f"N = {sum(total)} client updates")
    example = next((r for r in records if r.leaked and r.client != AGGREGATE and r.labels), None)
    if example is not None and (example.round, example.client) in truth:
        found = np.asarray(example.labels[0])
        true = np.asarray(truth[example.round, example.client]["labels"][0][0])
        classes = np.arange(found.size)
        right.bar(classes - 0.2, true, width=0.4, label="true (client)", color="#1f77b4")
        right.bar(classes + 0.2, found, width=0.4, label="recovered (server)", color="#ff7f0e")
        right.set_xlabel("class")
        right.set_ylabel("label mass")
        right.set_title(f"round {example.round}, {client_names(scored)[example.client]}")
        right.legend()
    else:
        right.text(0.5, 0.5, "no label leaked", ha="center", va="center")
        right.set_axis_off()
    figure_.suptitle(title)
    figure_.tight_layout()
    with atomic_target(path) as partial:
        figure_.savefig(partial, format="png", dpi=110)
    plt.close(figure_)
    return path


def write_report(
    folder: Path,
    records: list[AuditRecord],
    timings: list[RoundTiming],
    truth_dir: Path,
    title: str,
) -> tuple[list[ScoredRecord], list[Path]]:
    """Score the records and write audit.csv, timings.csv (per round: the clients' seconds
    and the audit's), report.md and audit.png into ``folder``."""
    truth = read_truth(truth_dir)
    scored = score(records, truth)
    written = [
        write_atomic(folder / "audit.csv", _csv(scored, ScoredRecord)),
        write_atomic(folder / "timings.csv", _csv(timings, RoundTiming)),
        write_atomic(folder / "report.md", tables(scored, timings, title)),
        figure(scored, records, truth, folder / "audit.png", title),
    ]
    return scored, written


__all__ = ["ScoredRecord", "read_truth", "score", "tables", "write_report"]
