"""`audit_mod`: a client-side Flower mod that audits the update the client is about to send.

Same code as the server-side `LeakageAudit` (`audit_update`): the arrays received, the arrays
about to be returned, the reply's ``num-examples`` and the train config. The reply is sent
unchanged; the verdict goes to the client's log and, with `AuditMod(records=PATH)`, to a JSON
Lines file of the client's own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from logging import INFO, WARNING
from pathlib import Path
from typing import Any

from flwr.app import Context, Message, MessageType
from flwr.clientapp.typing import ClientAppCallable
from flwr.supercore import log
from torch import nn

from gradleak.integrations.audit import DEFAULT_ATTACKS, AuditRecord
from gradleak.integrations.flower.options import AuditOptions
from gradleak.integrations.flower.records import num_examples, single, state


class AuditMod:
    """A Flower mod (``ClientApp(mods=[AuditMod(...)])``); ``records`` a JSON Lines path this
    client writes its records to (checked now, replaced only with ``overwrite=True``; rewritten
    atomically after every round), ``train_defaults`` and ``model`` as in `LeakageAudit`."""

    def __init__(
        self,
        *,
        attacks: Iterable[str] = DEFAULT_ATTACKS,
        family: str = "auto",
        records: str | Path | None = None,
        overwrite: bool = False,
        train_defaults: Mapping[str, Any] | None = None,
        model: nn.Module | None = None,
    ) -> None:
        self.options = AuditOptions.checked(
            attacks=attacks,
            family=family,
            records=records,
            overwrite=overwrite,
            train_defaults=train_defaults,
            model=model,
        )
        self.records: list[AuditRecord] = []

    def __call__(self, message: Message, context: Context, call_next: ClientAppCallable) -> Message:
        if message.metadata.message_type != MessageType.TRAIN:
            return call_next(message, context)
        try:
            sent = state(single(message.content.array_records, "ArrayRecord", "received"))
            config = dict(single(message.content.config_records, "ConfigRecord", "received"))
        except ValueError as error:
            log(WARNING, "gradleak audit_mod: not auditable: %s", error)
            return call_next(message, context)
        reply = call_next(message, context)
        if reply.has_error():
            return reply
        round_number = int(config.get("server-round", 0))
        try:
            returned = state(single(reply.content.array_records, "ArrayRecord", "reply"))
            num_samples = num_examples(
                single(reply.content.metric_records, "MetricRecord", "reply")
            )
        except (KeyError, ValueError) as error:
            reason = f"not auditable: {error}"
            records = [AuditRecord(round_number, "self", 0, "none", False, reason, 0.0)]
        else:
            records = self.options.audit(
                sent, returned, config, num_samples=num_samples, round=round_number, client="self"
            )
        self.records += records
        for record in records:
            verdict = "LEAKS its label(s)" if record.leaked else f"refused: {record.reason}"
            log(INFO, "gradleak audit_mod: round %s, %s: %s", round_number, record.attack, verdict)
        self.options.write(self.records)
        return reply


#: The mod with default settings: ``ClientApp(mods=[audit_mod])`` logs what each update leaks.
audit_mod = AuditMod()

__all__ = ["AuditMod", "audit_mod"]
