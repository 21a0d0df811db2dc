"""`gradleak recover` on a batch: `recover_batch`, then one line per recovered sample.

With a simulated client the recovered samples are matched to the true ones by optimal
assignment (`gradleak.metrics.match_labels`) and each line shows the truth it was matched to;
the matching happens after recovery, for the report only.
"""

from __future__ import annotations

import argparse
import json

import gradleak
from gradleak.cli.call_timing import CallTiming, timed_calls
from gradleak.client import ClientSecret, GradientObservation
from gradleak.metrics import match_labels, relative_feature_error
from gradleak.recovery.batch import BatchEstimate


def _truth_columns(estimate: BatchEstimate, secret: ClientSecret) -> dict[int, dict]:
    """Per recovered row: the true sample it is matched to, its class, label l1, feature error."""
    if estimate.num_recovered == 0:
        return {}
    truth = secret.soft_label.double().numpy()
    features = secret.features.double().numpy()
    rows, cols, l1 = match_labels(
        estimate.soft_labels.numpy(), truth, estimate.features.numpy(), features
    )
    matched = {}
    for row, col, error in zip(rows, cols, l1, strict=True):
        matched[int(row)] = {
            "true_sample": int(col),
            "true_class": int(truth[col].argmax()),
            "l1": float(error),
            "feature_error": relative_feature_error(estimate.features[row], secret.features[col]),
        }
    return matched


def _verdict(estimate: BatchEstimate) -> str:
    if not estimate.converged:
        return (
            f"verdict: refused ({estimate.num_recovered} of {estimate.num_samples} samples "
            f"reported): {estimate.reason}"
        )
    return (
        f"verdict: recovered all {estimate.num_samples} samples' {estimate.family} labels "
        "and last-layer features"
    )


def _describe(estimate: BatchEstimate, secret: ClientSecret | None, timing: CallTiming) -> str:
    batch = estimate.num_samples
    lines = [
        f"batch of {batch} inputs; method {estimate.method}, family {estimate.family} "
        f"{dict(estimate.family_params)}; per-sample labels are identifiable up to "
        f"B = {estimate.bound} here (docs/batch.md)"
    ]
    if estimate.converged:
        lines.append(
            f"converged: all {batch} samples recovered, their atoms reproduce the gradient"
        )
    else:
        lines.append(
            f"NOT converged ({estimate.num_recovered} of {batch} reported): {estimate.reason}"
        )
    matched = {} if secret is None else _truth_columns(estimate, secret)
    if estimate.num_recovered:
        header = "sample  top class  top prob  weight    residual"
        if matched:
            header += "  | true class  label l1  feature error (matched by assignment)"
        lines.append(header)
    for row in range(estimate.num_recovered):
        label = estimate.soft_labels[row]
        line = (
            f"{row:6d}  {int(label.argmax()):9d}  {float(label.max()):8.4f}  "
            f"{float(estimate.weights[row]):6.4f}  {float(estimate.residuals[row]):10.2e}"
        )
        if row in matched:
            truth = matched[row]
            line += (
                f"  | {truth['true_class']:10d}  {truth['l1']:8.1e}  {truth['feature_error']:13.1e}"
            )
        lines.append(line)
    if estimate.counts is not None:
        counts = {c: int(n) for c, n in enumerate(estimate.counts.tolist()) if n}
        lines.append(f"label counts (class: count): {counts}")
    if secret is not None:
        true_counts = secret.soft_label.argmax(dim=1).bincount().tolist()
        lines.append(
            f"true classes (class: count): { {c: n for c, n in enumerate(true_counts) if n} }"
        )
    lines += [timing.line(), _verdict(estimate)]
    return "\n".join(lines)


def run_batch(
    args: argparse.Namespace,
    observation: GradientObservation,
    secret: ClientSecret | None,
    method: str,
) -> int:
    """Recover every sample of a batch observation and print (or --json) the answer."""
    estimate, timing = timed_calls(
        lambda: gradleak.recover_batch(
            observation, args.attack_family, method=method, scale=args.scale
        )
    )
    if args.json:
        record = estimate.to_dict() | {
            "seconds": timing.warm_seconds,
            "first_call_seconds": timing.first_seconds,
        }
        if secret is not None:
            record["true_labels"] = secret.soft_label.tolist()
            record["matched"] = list(_truth_columns(estimate, secret).values())
        print(json.dumps(record))
    else:
        print(_describe(estimate, secret, timing))
    return 0
