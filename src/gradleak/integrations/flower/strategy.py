"""`LeakageAudit`: wrap any Flower strategy (Message API) and audit every update it receives.

The wrapper is a `flwr.serverapp.strategy.Strategy` that delegates every call to the strategy
it wraps, unchanged. On the way it keeps the arrays and train config each client was sent
(`configure_train`) and, before the wrapped strategy aggregates (`aggregate_train`), turns each
reply into an audit (`audit_update`: update = sent - returned, ``num-examples`` as the sample
count, lr / optimizer / local steps from the train config). It also audits the aggregate: what a
server sees under secure aggregation (with FedAvg over clients that each took one step, a
batch of every client's samples). Records go to a JSON Lines file, rewritten atomically after
every round; leakage counts join the round's MetricRecord under ``gradleak-*`` keys.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from logging import ERROR, INFO, WARNING
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from flwr.supercore import log
from torch import nn

from gradleak.integrations.audit import DEFAULT_ATTACKS, AuditRecord
from gradleak.integrations.flower.options import AuditOptions
from gradleak.integrations.flower.records import num_examples, single, state

#: The reply-metric key of the privacy a DP client reports (Opacus's epsilon).
EPSILON = "epsilon"
#: The ``client`` of the aggregate's records.
AGGREGATE = "aggregate"


@dataclass(frozen=True)
class RoundTiming:
    """One round's wall time: the clients' (sent to received) and the audit's (including the
    wrapped strategy's aggregation)."""

    round: int
    round_seconds: float
    audit_seconds: float


class LeakageAudit(Strategy):
    """Audit the updates ``strategy`` receives; otherwise behave exactly as ``strategy``.

    ``attacks``: keys of `AUDIT_ATTACKS`; ``family``: the attacker's label family ("auto",
    "hard", "smoothing", "mixup"); ``records``: a JSON Lines path (checked now, replaced only
    with ``overwrite=True``); ``train_defaults``: train-config values (keys of
    `TRAIN_CONFIG_KEYS`, e.g. ``{"lr": 0.1}``) for what the config sent does not carry;
    ``audit_aggregate``: also audit the aggregated update; ``model``: the global model's
    architecture (any weights), for the input attack on fully connected networks.
    """

    def __init__(
        self,
        strategy: Strategy,
        *,
        attacks: Iterable[str] = DEFAULT_ATTACKS,
        family: str = "auto",
        records: str | Path | None = None,
        overwrite: bool = False,
        train_defaults: Mapping[str, Any] | None = None,
        model: nn.Module | None = None,
        audit_aggregate: bool = True,
    ) -> None:
        if not isinstance(strategy, Strategy):
            raise TypeError(
                f"strategy must be a flwr.serverapp.strategy.Strategy, got {type(strategy)}"
            )
        self.strategy = strategy
        self.options = AuditOptions.checked(
            attacks=attacks,
            family=family,
            records=records,
            overwrite=overwrite,
            train_defaults=train_defaults,
            model=model,
        )
        self.audit_aggregate = audit_aggregate
        #: Every record so far, in the order written.
        self.records: list[AuditRecord] = []
        #: Rounds in which every client failed (Flower carries on "successfully").
        self.failed_rounds: list[int] = []
        #: Per round: seconds from sending to aggregating (the clients' round) and of the audit.
        self.timings: list[RoundTiming] = []
        self._sent: dict[int, tuple[dict, dict]] = {}
        self._global: dict | None = None
        self._sent_at = 0.0

    # --- training: keep what is sent, audit what comes back ------------------------------------

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        messages = list(self.strategy.configure_train(server_round, arrays, config, grid))
        self._sent = {}
        self._global = state(arrays)
        for message in messages:
            sent_arrays = single(message.content.array_records, "ArrayRecord", "sent")
            sent_config = single(message.content.config_records, "ConfigRecord", "sent")
            self._sent[message.metadata.dst_node_id] = (state(sent_arrays), dict(sent_config))
        self._sent_at = time.perf_counter()
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        received = time.perf_counter()
        found = [self._audit_reply(server_round, reply) for reply in replies]
        round_records = [record for records in found for record in records]
        arrays, metrics = self.strategy.aggregate_train(server_round, replies)
        failed = [reply for reply in replies if reply.has_error()]
        if replies and len(failed) == len(replies):
            self.failed_rounds.append(server_round)
            log(
                ERROR,
                "gradleak audit: round %s: EVERY client failed (%s); Flower continues as if "
                "the round succeeded, but nothing was trained or audited",
                server_round,
                "; ".join(sorted({reply.error.reason for reply in failed})),
            )
        if self.audit_aggregate and arrays is not None:
            round_records += self._audit_aggregate(server_round, replies, arrays)
        self.timings.append(
            RoundTiming(server_round, received - self._sent_at, time.perf_counter() - received)
        )
        self.records += round_records
        self._write()
        return arrays, _with_leakage(metrics, round_records)

    def _audit_reply(self, server_round: int, reply: Message) -> list[AuditRecord]:
        node = reply.metadata.src_node_id
        if reply.has_error():
            reason = f"the client failed: {reply.error.reason}"
            return [AuditRecord(server_round, str(node), 0, "none", False, reason, 0.0)]
        try:
            sent, config = self._sent[node]
            returned = state(single(reply.content.array_records, "ArrayRecord", "reply"))
            metrics = single(reply.content.metric_records, "MetricRecord", "reply")
            num_samples = num_examples(metrics)
        except (KeyError, ValueError) as error:
            reason = f"not auditable: {error}"
            return [AuditRecord(server_round, str(node), 0, "none", False, reason, 0.0)]
        records = self.options.audit(
            sent, returned, config, num_samples=num_samples, round=server_round, client=str(node)
        )
        epsilon = metrics.get(EPSILON)
        if isinstance(epsilon, int | float):
            records = [replace(record, epsilon=float(epsilon)) for record in records]
        return records

    def _audit_aggregate(
        self, server_round: int, replies: list[Message], arrays: ArrayRecord
    ) -> list[AuditRecord]:
        """The aggregate against the global model sent: with every client on one train config,
        a weighted mean of one-step updates is one step on all their samples."""
        good = [reply for reply in replies if not reply.has_error()]
        configs = [self._sent.get(reply.metadata.src_node_id, (None, None))[1] for reply in good]
        if not good or self._global is None or any(config != configs[0] for config in configs):
            reason = "no successful reply" if not good else "clients had different train configs"
            return [AuditRecord(server_round, AGGREGATE, 0, "none", False, reason, 0.0)]
        try:
            total = sum(
                num_examples(single(reply.content.metric_records, "MetricRecord", "reply"))
                for reply in good
            )
        except (KeyError, ValueError) as error:
            reason = f"not auditable: {error}"
            return [AuditRecord(server_round, AGGREGATE, 0, "none", False, reason, 0.0)]
        return self.options.audit(
            self._global,
            state(arrays),
            configs[0],
            num_samples=total,
            round=server_round,
            client=AGGREGATE,
        )

    def _write(self) -> None:
        self.options.write(self.records)
        leaked = sum(record.leaked for record in self.records)
        log(INFO, "gradleak audit: %s record(s), %s leaked", len(self.records), leaked)

    # --- everything else: the wrapped strategy, unchanged --------------------------------------

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return self.strategy.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        return self.strategy.aggregate_evaluate(server_round, replies)

    def summary(self) -> None:
        log(INFO, "\t├── gradleak LeakageAudit of %s", type(self.strategy).__name__)
        log(
            INFO,
            "\t│   attacks %s, family %s",
            ", ".join(self.options.attacks),
            self.options.family,
        )
        self.strategy.summary()

    def __getattr__(self, name: str) -> Any:
        # Attributes the wrapped strategy has (fraction_train, ...) read through the wrapper.
        if name == "strategy":
            raise AttributeError(name)
        return getattr(self.strategy, name)


def _with_leakage(metrics: MetricRecord | None, records: list[AuditRecord]) -> MetricRecord:
    """The round's metrics plus the audit's counts (``gradleak-*``)."""
    clients = [record for record in records if record.client != AGGREGATE]
    aggregate = [record for record in records if record.client == AGGREGATE]
    samples = sum(len(record.labels) for record in clients)
    leakage = {
        "gradleak-updates-audited": len({record.client for record in clients}),
        "gradleak-updates-leaked": len({record.client for record in clients if record.leaked}),
        "gradleak-labels-leaked": samples,
        "gradleak-aggregate-leaked": int(any(record.leaked for record in aggregate)),
    }
    if metrics is None:
        log(WARNING, "gradleak audit: the wrapped strategy returned no train metrics")
        return MetricRecord(leakage)
    merged = MetricRecord(dict(metrics))
    for key, value in leakage.items():
        merged[key] = value
    return merged


__all__ = ["LeakageAudit", "RoundTiming"]
