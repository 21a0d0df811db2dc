"""The privacy-utility picture of a defense: leakage, epsilon and test accuracy per setting.

For every point of a grid over a registered defense's parameters (`DEFENSES`):

- **leakage**: ``samples`` single-input client steps (the paper's setting: one test image, a
  smoothed label) defended by the transform (DP-SGD: Opacus's own step, the update read back
  from the parameters the client sends), then attacked as a server would
  (`audit_observation`: the label attack, and the input for fully connected models); scored
  afterwards against the truth: labels recovered (l1 < 1e-2), false accepts, the class
  (argmax) a server guesses from the signs alone (iDLG: what survives when the soft label does
  not), the feature error and the input PSNR;
- **utility**: a short training of a fresh model with the defense on every step (Adam; DP-SGD
  through Opacus's ``PrivacyEngine`` with Poisson sampling, i.e. DP-Adam; the other transforms
  on each batch's gradient), then its test accuracy;
- **epsilon**: Opacus's RDP accountant after that training (DP-SGD only; the other defenses
  carry no guarantee: None).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn

import gradleak
from gradleak.client.observation import GradientObservation
from gradleak.defenses import DEFENSES
from gradleak.integrations.audit import audit_observation, refusal_kind
from gradleak.metrics.images import psnr, to_unit_range
from gradleak.metrics.labels import relative_feature_error
from gradleak.training.trainer import evaluate, soft_cross_entropy

#: A recovered label within this l1 of the true one counts as recovered.
SUCCESS_L1 = 1e-2
#: The defense that trains through Opacus (its epsilon is accounted).
OPACUS_DEFENSE = "dp-sgd"


@dataclass(frozen=True)
class SweepSettings:
    """The attacked client and the short training (``train_size`` images, ``epochs`` of
    ``batch_size``, Adam at ``lr``: the sigmoid LeNet barely moves under SGD in a few epochs,
    70% test accuracy on Fashion-MNIST after 5 epochs of 5000 images with Adam; ``delta`` for
    epsilon)."""

    model: str = "lenet"
    dataset: str = "fashion-mnist"
    #: The dataset's local folder (None: its default place, e.g. Debian's Fashion-MNIST).
    data_root: str | None = None
    eps: float = 0.1
    samples: int = 20
    train_size: int = 5000
    test_size: int = 1000
    epochs: int = 5
    batch_size: int = 64
    lr: float = 3e-3
    delta: float = 1e-5
    seed: int = 0


@dataclass(frozen=True)
class SweepRow:
    """One grid point: the defense's parameters and what was measured (rates over
    ``samples`` single-input steps; ``input_psnr`` the median, for fully connected models)."""

    defense: str
    params: Mapping[str, Any]
    samples: int
    labels_recovered: float
    false_accepts: int
    class_leaked: float
    feature_error: float | None
    input_psnr: float | None
    test_accuracy: float
    epsilon: float | None
    refusals: Mapping[str, int]


def grid(defense: str, values: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of ``values`` (parameter -> list), each checked by the defense."""
    entry = DEFENSES[defense]
    names = [field.name for field in fields(entry)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"{defense} has no parameter(s) {unknown}; its parameters: {names}")
    missing = [
        field.name
        for field in fields(entry)
        if field.default is MISSING
        and field.default_factory is MISSING
        and field.name not in values
    ]
    if missing:
        flags = ", ".join("--" + name.replace("_", "-") for name in missing)
        raise ValueError(f"{defense} needs {flags}")
    keys = list(values)
    points = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values.values())]
    for point in points:
        DEFENSES.build(defense, **point)  # a value out of range is an error before any work
    return points


def _model(settings: SweepSettings, images: gradleak.data.ImageSet) -> nn.Module:
    return gradleak.models.build_for(
        settings.model, images, seed=settings.seed, classifier_bias=settings.model == "fcn4"
    )


def _transformed(model, inputs, label, defense, params, seed):
    """The client's exact gradient, then the registered transform."""
    observation, secret = gradleak.simulate_client_step(model, inputs, label)
    return gradleak.defenses.apply(observation, defense, seed=seed, **params), secret


def _opacus_sent(model, inputs, label, defense, params, seed):
    """The update an Opacus client sends (one DP-SGD step of SGD at lr 0.1 on the input), read
    back from its parameters as a server reads it."""
    from gradleak.client.updates import ClientUpdate
    from gradleak.integrations.opacus import private_client_step

    _observation, secret = gradleak.simulate_client_step(model, inputs, label)
    update = ClientUpdate(
        lr=SENT_LR,
        clipping="max-grad-norm",
        max_grad_norm=float(params["max_grad_norm"]),
        noise_multiplier=float(params["noise_multiplier"]),
    )
    targets = label.probabilities[None].to(inputs.dtype)
    step, _engine = private_client_step(model, inputs, targets, update, seed=seed)
    sent = GradientObservation.from_update(step.before, step.after, SENT_LR, num_samples=1)
    return sent, secret


#: The learning rate of the attacked Opacus step (the server knows it from its train config).
SENT_LR = 0.1
#: defense -> how the attacked update is made: Opacus's own step for DP-SGD, the registered
#: transform of the exact gradient for the rest.
SENDERS = {OPACUS_DEFENSE: _opacus_sent}


def leakage(
    defense: str, params: Mapping[str, Any], settings: SweepSettings, test: Any
) -> dict[str, Any]:
    """The attacks on ``samples`` defended single-input steps, scored against the truth."""
    model = _model(settings, test)
    recovered = false = leaked_class = 0
    feature_errors, psnrs = [], []
    refusals: dict[str, int] = {}
    for index in range(settings.samples):
        item = index % len(test.labels)
        inputs = test.normalise(test.images[item : item + 1])
        label = gradleak.labels.smoothing(int(test.labels[item]), test.num_classes, settings.eps)
        sent, secret = SENDERS.get(defense, _transformed)(
            model, inputs, label, defense, params, settings.seed + index
        )
        guess = gradleak.recover_label(sent, "hard", method="idlg")
        leaked_class += int(guess.soft_label.argmax()) == int(test.labels[item])
        for record in audit_observation(sent, family="smoothing", model=model):
            if not record.leaked:
                kind = f"{record.attack}: {refusal_kind(record.reason)}"
                refusals[kind] = refusals.get(kind, 0) + 1
                continue
            if record.attack == "label":
                found = torch.tensor(record.estimate["soft_label"], dtype=torch.float64)
                correct = float((found - secret.soft_label[0].double()).abs().sum()) < SUCCESS_L1
                recovered += correct
                false += not correct
                features = torch.tensor(record.estimate["features"], dtype=torch.float64)
                error = relative_feature_error(features, secret.features[0].double())
                if correct and error is not None:
                    feature_errors.append(error)
            if record.attack == "input":
                found = torch.tensor(record.estimate["inputs"], dtype=torch.float64)
                truth = secret.inputs.double().reshape(found.shape)
                if found.dim() == 4:
                    psnrs.append(
                        float(
                            psnr(
                                to_unit_range(found, test.mean, test.std),
                                to_unit_range(truth, test.mean, test.std),
                            )[0]
                        )
                    )
    return {
        "labels_recovered": recovered / settings.samples,
        "false_accepts": false,
        "class_leaked": leaked_class / settings.samples,
        "feature_error": float(np.median(feature_errors)) if feature_errors else None,
        "input_psnr": float(np.median(psnrs)) if psnrs else None,
        "refusals": refusals,
    }


def _batches(train: Any, settings: SweepSettings, generator: torch.Generator):
    order = torch.randperm(len(train.labels), generator=generator)
    for start in range(0, len(order), settings.batch_size):
        index = order[start : start + settings.batch_size]
        yield train.normalise(train.images[index]), train.labels[index]


def _targets(classes: torch.Tensor, num_classes: int, eps: float) -> torch.Tensor:
    return torch.nn.functional.one_hot(classes, num_classes).float() * (1 - eps) + eps / num_classes


def utility(
    defense: str, params: Mapping[str, Any], settings: SweepSettings, train: Any, test: Any
) -> tuple[float, float | None]:
    """Test accuracy after the short training with the defense, and Opacus's epsilon."""
    torch.manual_seed(settings.seed)
    model = _model(settings, train).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    generator = torch.Generator().manual_seed(settings.seed)
    if defense == OPACUS_DEFENSE:
        return _opacus_utility(model, optimizer, params, settings, train, test)
    built = DEFENSES.build(defense, **params)
    named = {name: p for name, p in model.named_parameters() if p.requires_grad}
    for _epoch in range(settings.epochs):
        for step, (inputs, classes) in enumerate(_batches(train, settings, generator)):
            optimizer.zero_grad()
            soft_cross_entropy(
                model(inputs), _targets(classes, train.num_classes, settings.eps)
            ).backward()
            observation = GradientObservation(
                {name: p.grad for name, p in named.items()},
                {name: p.detach() for name, p in named.items()},
                num_samples=len(classes),
            )
            defended = built.apply(observation, generator=torch.Generator().manual_seed(step))
            for name, p in named.items():
                p.grad = defended.gradients[name].to(p.dtype).clone()
            optimizer.step()
    return evaluate(model, test), None


def _opacus_utility(model, optimizer, params, settings, train, test):
    """DP-Adam through Opacus (Poisson sampling, flat clipping), then its accuracy and epsilon."""
    from opacus import PrivacyEngine

    from gradleak.integrations.opacus import quiet

    dataset = torch.utils.data.TensorDataset(
        train.normalise(train.images), _targets(train.labels, train.num_classes, settings.eps)
    )
    loader = torch.utils.data.DataLoader(dataset, batch_size=settings.batch_size)
    noise = float(params["noise_multiplier"])
    with quiet():
        engine = PrivacyEngine(accountant="rdp")
        private_model, private_optimizer, private_loader = engine.make_private(
            module=model,
            optimizer=optimizer,
            data_loader=loader,
            noise_multiplier=noise,
            max_grad_norm=float(params["max_grad_norm"]),
            poisson_sampling=True,
            noise_generator=torch.Generator().manual_seed(settings.seed),
        )
        for _epoch in range(settings.epochs):
            for inputs, targets in private_loader:
                if len(inputs) == 0:
                    continue
                private_optimizer.zero_grad()
                soft_cross_entropy(private_model(inputs), targets).backward()
                private_optimizer.step()
        epsilon = engine.get_epsilon(settings.delta) if noise > 0 else math.inf
    return evaluate(private_model, test), float(epsilon)


def sweep(
    defense: str, values: Mapping[str, list[Any]], settings: SweepSettings, *, progress=None
) -> list[SweepRow]:
    """Every grid point of ``defense`` (`grid`), measured (`leakage`, `utility`)."""
    points = grid(defense, values)
    if "train" not in gradleak.data.spec(settings.dataset).splits:
        raise ValueError(
            f"dataset {settings.dataset!r} has no train split: the sweep's test accuracy needs a "
            "model trained on other images than it is tested on (use fashion-mnist)"
        )
    root, limit = settings.data_root, settings.test_size
    test = gradleak.data.load(settings.dataset, root, split="test", limit=limit)
    train = gradleak.data.load(settings.dataset, root, split="train", limit=settings.train_size)
    rows = []
    for params in points:
        leaked = leakage(defense, params, settings, test)
        accuracy, epsilon = utility(defense, params, settings, train, test)
        rows.append(
            SweepRow(
                defense=defense,
                params=params,
                samples=settings.samples,
                test_accuracy=accuracy,
                epsilon=epsilon,
                **leaked,
            )
        )
        if progress is not None:
            progress(rows[-1])
    return rows


__all__ = ["SweepRow", "SweepSettings", "grid", "leakage", "sweep", "utility"]
