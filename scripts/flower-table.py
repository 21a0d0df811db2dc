"""The Flower table of the audit (docs/audit.md): one real `gradleak audit flower` run per
scenario, summarised from each report folder. Usage: python scripts/flower-table.py OUT_DIR

Each scenario is 3 clients x 2 rounds; the audit's own numbers come from records.jsonl and
audit.csv (scored against the clients' truth files after the run), the times from
timings.csv (medians per round: the audit's, and the clients' round from round 2 on, as
round 1's includes starting Ray).
"""

from __future__ import annotations

import csv
import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from gradleak.integrations.audit import refusal_kind

SCENARIOS = {
    "B=1, 1 step, smoothing, sgd": [],
    "B=1, 1 step, mixup, sgd": ["--augment", "mixup"],
    "B=1, 1 step, hard, bias, sgd": ["--augment", "hard", "--classifier-bias"],
    "B=1, 1 step, smoothing, sgd momentum 0.9": ["--momentum", "0.9"],
    "B=1, 1 step, smoothing, adam": ["--optimizer", "adam", "--lr", "0.001"],
    "B=1, 5 steps, smoothing, sgd": ["--local-steps", "5"],
    "B=1, fcn4 (bias), smoothing, sgd": ["--model", "fcn4", "--classifier-bias"],
    "B=1, DP-SGD C=1 sigma=0 (clipping only)": ["--max-grad-norm", "1"],
    "B=1, DP-SGD C=1 sigma=0.1": ["--max-grad-norm", "1", "--noise-multiplier", "0.1"],
    "B=8, C=100, smoothing, sgd": ["--batch-size", "8", "--dataset", "embedded-cifar100"],
    "B=8, C=100, hard, bias, sgd": [
        "--batch-size", "8", "--dataset", "embedded-cifar100", "--augment", "hard",
        "--classifier-bias",
    ],
    "B=8, C=10, smoothing, sgd": ["--batch-size", "8"],
}  # fmt: skip


def summary(folder: Path, seconds: float) -> dict:
    records = [json.loads(line) for line in (folder / "records.jsonl").read_text().splitlines()]
    with (folder / "audit.csv").open() as handle:
        scored = list(csv.DictReader(handle))
    clients = [row for row in scored if row["client"] != "aggregate"]
    updates = {(row["round"], row["client"]) for row in clients}
    leaked = {(row["round"], row["client"]) for row in clients if row["leaked"] == "True"}
    refusals = Counter(refusal_kind(r["reason"]) for r in records if not r["leaked"])
    with (folder / "timings.csv").open() as handle:
        timings = list(csv.DictReader(handle))
    # Round 1's clients' time includes starting Ray and the simulation: rounds 2+ only.
    later = timings[1:] or timings
    return {
        "updates": len(updates),
        "leaked": len(leaked),
        "labels": sum(int(row["correct"]) for row in clients if row["attack"] != "input"),
        "inputs": sum(row["attack"] == "input" and row["leaked"] == "True" for row in clients),
        "false": sum(int(row["false_accepts"]) for row in scored),
        "aggregate": sum(row["leaked"] == "True" for row in scored if row["client"] == "aggregate"),
        "refusals": "; ".join(f"{n} {kind}" for kind, n in refusals.most_common()) or "-",
        "audit_round": statistics.median(float(t["audit_seconds"]) for t in timings),
        "clients_round": statistics.median(float(t["round_seconds"]) for t in later),
        "wall": seconds,
    }


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=False)
    rows = []
    for name, flags in SCENARIOS.items():
        folder = out / name.replace(" ", "").replace(",", "_").replace("=", "")
        command = ["gradleak", "audit", "flower", "--clients", "3", "--rounds", "2"]
        started = time.perf_counter()
        done = subprocess.run([*command, *flags, "--out", str(folder)], capture_output=True)
        seconds = time.perf_counter() - started
        if not (folder / "records.jsonl").exists():
            print(f"{name}: failed\n{done.stderr.decode()[-2000:]}", file=sys.stderr)
            continue
        rows.append((name, summary(folder, seconds)))
        print(name, rows[-1][1], flush=True)
    header = (
        "| scenario | client updates | leaked | labels recovered | inputs recovered | false "
        "accepts | aggregates leaked | refusals by reason | audit s per round | clients' "
        "round s | run s |"
    )
    lines = [header, "|" + "---|" * 11]
    for name, row in rows:
        lines.append(
            f"| {name} | {row['updates']} | {row['leaked']} | {row['labels']} | {row['inputs']} | "
            f"{row['false']} | {row['aggregate']} of 2 | {row['refusals']} | "
            f"{row['audit_round']:.2f} | {row['clients_round']:.2f} | {row['wall']:.0f} |"
        )
    table = "\n".join(lines) + "\n"
    (out / "flower-table.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
