"""What a Flower auditor (the server's `LeakageAudit`, the client's `AuditMod`) runs and where it
writes: one frozen value, checked once, and the audit of one update by it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from gradleak.integrations.audit import (
    AUDIT_ATTACKS,
    DEFAULT_ATTACKS,
    AuditRecord,
    TrainSettings,
    audit_update,
)
from gradleak.output_files import check_new_file, write_atomic


@dataclass(frozen=True)
class AuditOptions:
    """``attacks``: keys of `AUDIT_ATTACKS`; ``family``: the attacker's label family;
    ``records``: the JSON Lines file the records go to (None: kept in memory only);
    ``train_defaults``: train-config values for what a config does not carry (e.g.
    ``{"lr": 0.1}``); ``model``: the global model's architecture, for the input attack."""

    attacks: tuple[str, ...] = DEFAULT_ATTACKS
    family: str = "auto"
    records: Path | None = None
    train_defaults: Mapping[str, Any] = field(default_factory=dict)
    model: nn.Module | None = None

    @classmethod
    def checked(
        cls,
        *,
        attacks: Iterable[str],
        family: str,
        records: str | Path | None,
        overwrite: bool,
        train_defaults: Mapping[str, Any] | None,
        model: nn.Module | None,
    ) -> AuditOptions:
        """The options, every one checked before any work: attack keys, train-config keys,
        and the records path (an existing file is replaced only with ``overwrite=True``)."""
        keys = tuple(attacks)
        for key in keys:
            AUDIT_ATTACKS[key]  # an unknown key lists the known ones
        defaults = dict(train_defaults or {})
        TrainSettings.from_config({}, {"lr": 1.0} | defaults)  # unknown keys named now
        path = (
            None
            if records is None
            else check_new_file(records, name="records", overwrite=overwrite)
        )
        return cls(keys, family, path, defaults, model)

    def audit(
        self,
        before: Mapping[str, Tensor],
        after: Mapping[str, Tensor],
        config: Mapping[str, Any],
        *,
        num_samples: int,
        round: int,
        client: str,
    ) -> list[AuditRecord]:
        """`audit_update` of one update with these options and the train ``config`` it was
        made with (over ``train_defaults``); a config that cannot be read is one record."""
        try:
            settings = TrainSettings.from_config(config, self.train_defaults)
        except ValueError as error:
            return [AuditRecord(round, client, 0, "none", False, f"not auditable: {error}", 0.0)]
        return audit_update(
            before,
            after,
            settings,
            num_samples=num_samples,
            round=round,
            client=client,
            family=self.family,
            attacks=self.attacks,
            model=self.model,
        )

    def write(self, records: list[AuditRecord]) -> None:
        """Every record so far to ``records`` (JSON Lines, rewritten atomically), if set."""
        if self.records is not None:
            lines = (json.dumps(record.to_dict(), allow_nan=False) for record in records)
            write_atomic(self.records, "".join(line + "\n" for line in lines))
