"""Flower (flwr >= 1.42, Message API): audit what a federated training leaks.

`LeakageAudit` wraps any server strategy; `audit_mod` / `AuditMod` audit on the client side;
`simulation` runs a real offline Flower simulation of gradleak's own clients (the CLI's
``gradleak audit flower``). Needs ``pip install 'gradleak[flower]'``.
"""

from gradleak.integrations.flower.mod import AuditMod, audit_mod
from gradleak.integrations.flower.strategy import LeakageAudit

__all__ = ["AuditMod", "LeakageAudit", "audit_mod"]
