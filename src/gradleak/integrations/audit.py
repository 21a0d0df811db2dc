"""Audit one client update as a server receives it: every attack that applies, or why none does.

A server holds the parameters it sent and those a client returned, the client's claimed
sample count (Flower's ``num-examples``) and the train config it sent (learning rate,
optimizer, local steps). `audit_update` reads the gradient back (`GradientObservation.
from_update`: SGD with momentum / Nesterov / weight decay undone exactly, Adam sign-only,
several local steps refused) and runs the registered attacks of `AUDIT_ATTACKS`: the
single-input recovery (`recover_label`, B = 1) and the batch recovery (`recover_batch`,
B > 1). Each gives one `AuditRecord`: what leaked, or the refusal with its reason. The attack
never sees the client's data; `leaked` is the attack's own observable verdict (``converged``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor, nn

from gradleak.client.observation import GradientObservation
from gradleak.client.update_rules import UPDATE_RULES
from gradleak.json_values import fields_dict
from gradleak.reconstruction import reconstruct
from gradleak.reconstruction.fc_chain import NotLinearReluChain, linear_relu_chain
from gradleak.recovery import recover_batch, recover_label
from gradleak.registry import Registry

#: The train-config keys the audit reads (Flower's kebab-case vocabulary), and the setting each
#: one fills.
TRAIN_CONFIG_KEYS = {
    "lr": "lr",
    "optimizer": "optimizer",
    "momentum": "momentum",
    "nesterov": "nesterov",
    "weight-decay": "weight_decay",
    "local-steps": "local_steps",
}


@dataclass(frozen=True)
class TrainSettings:
    """What the server told the client to do: its optimizer (a key of `UPDATE_RULES`) and
    settings, and the local steps per round."""

    lr: float
    optimizer: str = "sgd"
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    local_steps: int = 1

    def __post_init__(self) -> None:
        UPDATE_RULES[self.optimizer]  # an unknown key lists the known ones
        if isinstance(self.lr, bool) or not isinstance(self.lr, int | float) or not self.lr > 0:
            raise ValueError(f"lr must be a number > 0 (the client's step size), got {self.lr!r}")
        steps = self.local_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"local-steps must be an integer >= 1, got {steps!r}")

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
    ) -> TrainSettings:
        """The settings in a train config (keys of TRAIN_CONFIG_KEYS), over ``defaults``
        (same keys) for what the config does not carry."""
        values = dict(defaults or {}) | {k: v for k, v in config.items() if k in TRAIN_CONFIG_KEYS}
        unknown = sorted(set(defaults or {}) - set(TRAIN_CONFIG_KEYS))
        if unknown:
            raise ValueError(
                f"unknown train-config key(s) {unknown}; known: {', '.join(TRAIN_CONFIG_KEYS)}"
            )
        if "lr" not in values:
            raise ValueError(
                "the train config carries no 'lr' (the client's learning rate), needed to read "
                "the gradient back from an update: send it in the config or pass it as a default"
            )
        return cls(**{TRAIN_CONFIG_KEYS[key]: value for key, value in values.items()})


@dataclass(frozen=True)
class AuditAttack:
    """An attack the audit runs: ``applies(observation, model)`` is "" when it applies, else
    why not; ``run(observation, family, model)`` returns a value with ``converged``,
    ``reason`` and ``to_dict()`` (`LabelEstimate`, `BatchEstimate`, `Reconstruction`).
    ``model`` is the global model's architecture (None when the auditor did not give it)."""

    applies: Callable[[GradientObservation, nn.Module | None], str]
    run: Callable[[GradientObservation, str, nn.Module | None], Any]


def refusal_kind(reason: str) -> str:
    """A refusal's kind: its reason up to the first colon or parenthesis (what follows holds the
    numbers of the case), for counting refusals by reason."""
    return reason.split(":")[0].split("(")[0].strip() or "-"


def _fully_connected(observation: GradientObservation, model: nn.Module | None) -> str:
    if model is None:
        return "no model given: the input attack needs the architecture"
    if observation.num_samples != 1:
        return f"num-examples = {observation.num_samples}: the input attack needs 1"
    try:
        linear_relu_chain(model, classifier=observation.classifier)
    except NotLinearReluChain as error:
        return f"not a fully connected ReLU network ({error})"
    return ""


def _input(observation: GradientObservation, family: str, model: nn.Module | None) -> Any:
    """The input, layer by layer from the recovered feature (analytic-fc, Sec. 5.3)."""
    estimate = recover_label(observation, family=family)
    return reconstruct(observation, model, "analytic-fc", labels=estimate)


#: attack key -> AuditAttack. Keys are the ``attacks`` of `audit_update` and the record's
#: ``attack`` column.
AUDIT_ATTACKS: Registry[AuditAttack] = Registry("audit attack")


def _single(observation: GradientObservation, _model: nn.Module | None) -> str:
    if observation.num_samples == 1:
        return ""
    return f"num-examples = {observation.num_samples}: the single-input attack needs 1"


def _batch(observation: GradientObservation, _model: nn.Module | None) -> str:
    if observation.num_samples > 1:
        return ""
    return "num-examples = 1: a single input, audited by the label attack"


AUDIT_ATTACKS.add(
    "label",
    AuditAttack(_single, lambda observation, family, _model: recover_label(observation, family)),
)
AUDIT_ATTACKS.add(
    "batch",
    AuditAttack(_batch, lambda observation, family, _model: recover_batch(observation, family)),
)
AUDIT_ATTACKS.add("input", AuditAttack(applies=_fully_connected, run=_input))

#: What `audit_update` and the Flower audit run by default.
DEFAULT_ATTACKS = ("label", "batch", "input")


@dataclass(frozen=True)
class AuditRecord:
    """One attack on one update. ``round`` and ``client`` say whose (``client`` "aggregate"
    for the aggregated update); ``leaked`` is the attack's own verdict; ``reason`` why not;
    ``estimate`` the attack's answer as JSON-ready values (None when it did not run)."""

    round: int
    client: str
    num_samples: int
    attack: str
    leaked: bool
    reason: str
    seconds: float
    estimate: Mapping[str, Any] | None = None
    #: The privacy the client reported for this update (Opacus's epsilon), when it did.
    epsilon: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return fields_dict(self)

    @property
    def labels(self) -> list[list[float]]:
        """The recovered soft labels (one row per sample; none unless ``leaked``)."""
        if not self.leaked or self.estimate is None:
            return []
        if "soft_labels" in self.estimate:
            return [list(row) for row in self.estimate["soft_labels"]]
        if "soft_label" in self.estimate:
            return [list(self.estimate["soft_label"])]
        return []


def audit_update(
    before: Mapping[str, Tensor | np.ndarray],
    after: Mapping[str, Tensor | np.ndarray],
    settings: TrainSettings,
    *,
    num_samples: int,
    round: int = 0,
    client: str = "",
    family: str = "auto",
    attacks: Iterable[str] = DEFAULT_ATTACKS,
    classifier: str | None = None,
    model: nn.Module | None = None,
) -> list[AuditRecord]:
    """The attacks of ``attacks`` that apply to the update ``before`` -> ``after`` (parameters
    by name, as sent and as returned), one record each; when none applies, one "none" record
    with each attack's reason, and when the gradient cannot be read back from the update, one
    "update" record with why. ``model``: the global model (its architecture; the weights
    come from ``before``), for the input attack on fully connected networks.
    """
    keys = list(attacks)
    for key in keys:
        AUDIT_ATTACKS[key]  # an unknown key lists the known ones
    started = time.perf_counter()
    try:
        observation = GradientObservation.from_update(
            dict(before),
            dict(after),
            settings.lr,
            optimizer=settings.optimizer,
            momentum=settings.momentum,
            nesterov=settings.nesterov,
            weight_decay=settings.weight_decay,
            classifier=classifier,
            num_samples=num_samples,
            local_steps=settings.local_steps,
        )
    except ValueError as error:
        seconds = time.perf_counter() - started
        return [AuditRecord(round, client, num_samples, "update", False, str(error), seconds)]
    return audit_observation(
        observation, round=round, client=client, family=family, attacks=keys, model=model
    )


def audit_observation(
    observation: GradientObservation,
    *,
    round: int = 0,
    client: str = "",
    family: str = "auto",
    attacks: Iterable[str] = DEFAULT_ATTACKS,
    model: nn.Module | None = None,
) -> list[AuditRecord]:
    """The attacks of ``attacks`` that apply to ``observation``, one record each (an attack
    that finds the gradient unreadable, e.g. not rank one, gives a refusal with why); when none
    applies, one "none" record with each attack's reason."""
    keys = list(attacks)
    for key in keys:
        AUDIT_ATTACKS[key]  # an unknown key lists the known ones
    num_samples = observation.num_samples
    records, reasons = [], []
    for key in keys:
        attack = AUDIT_ATTACKS[key]
        started = time.perf_counter()
        why_not = attack.applies(observation, model)
        if why_not:
            reasons.append(f"{key}: {why_not}")
            continue
        try:
            estimate = attack.run(observation, family, model)
        except ValueError as error:  # the gradient is not what the attack reads (not rank one)
            seconds = time.perf_counter() - started
            records.append(AuditRecord(round, client, num_samples, key, False, str(error), seconds))
            continue
        records.append(
            AuditRecord(
                round,
                client,
                num_samples,
                key,
                bool(estimate.converged),
                estimate.reason,
                time.perf_counter() - started,
                estimate.to_dict(),
            )
        )
    if not records:
        reason = "; ".join(reasons) or "no attack asked for"
        records.append(AuditRecord(round, client, num_samples, "none", False, reason, 0.0))
    return records


__all__ = [
    "AUDIT_ATTACKS",
    "DEFAULT_ATTACKS",
    "AuditAttack",
    "AuditRecord",
    "TrainSettings",
    "audit_update",
]
