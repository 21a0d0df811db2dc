"""A real offline Flower simulation of gradleak's clients, audited by `LeakageAudit`.

The server (a `ServerApp` around `LeakageAudit(FedAvg(...))`) sends the global model and a
train config that names the recipe (`Recipe`: model, dataset, batch size, local steps,
augmentation, optimizer); each client (`app`, a `ClientApp` importable by Ray's workers) loads
its partition of the dataset, takes its local steps with a freshly built ``torch.optim``
optimizer, returns its parameters and ``num-examples``, and, for the evaluation afterwards
only, writes what it trained on (its soft labels) to a truth folder the audit never reads.
`run` drives ``flwr.simulation.run_simulation`` (Ray backend, one CPU per client).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

import gradleak
from gradleak.client.updates import CLIENT_OPTIMIZERS, ClientUpdate
from gradleak.data.fashion_mnist import DEFAULT_ROOT as FASHION_ROOT
from gradleak.integrations.flower.records import single
from gradleak.integrations.flower.strategy import EPSILON, LeakageAudit
from gradleak.models.registry import MODELS
from gradleak.output_files import write_atomic
from gradleak.training.augment import parse_augmentation
from gradleak.training.trainer import soft_cross_entropy

#: Where the client writes its truth (key of the train config), and the model seed.
TRUTH_KEY = "gradleak-truth-dir"
#: Images per client partition drawn from the dataset's test split (enough for every round).
PARTITION = 200
#: The delta of the epsilon a DP client reports.
DELTA = 1e-5


@dataclass(frozen=True)
class Recipe:
    """What every client does each round (sent in the train config, kebab-case keys)."""

    model: str = "lenet"
    dataset: str = "fashion-mnist"
    #: The dataset's local folder ("": its default location; CIFAR and image folders need one).
    data_root: str = ""
    batch_size: int = 1
    local_steps: int = 1
    augment: str = "smoothing:0.1"
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    classifier_bias: bool = False
    seed: int = 0
    #: DP-SGD through Opacus when > 0 (per-sample clipping to it, then noise_multiplier).
    max_grad_norm: float = 0.0
    noise_multiplier: float = 0.0

    def __post_init__(self) -> None:
        MODELS[self.model]  # an unknown key lists the known ones
        parse_augmentation(self.augment)
        ClientUpdate(optimizer=self.optimizer, lr=self.lr, momentum=self.momentum)
        if self.max_grad_norm < 0 or self.noise_multiplier < 0:
            raise ValueError("--max-grad-norm and --noise-multiplier must be >= 0")
        if self.noise_multiplier and not self.max_grad_norm:
            raise ValueError("--noise-multiplier needs --max-grad-norm (DP-SGD clips first)")
        for name in ("batch_size", "local_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                flag = name.replace("_", "-")
                raise ValueError(f"--{flag} must be an integer >= 1, got {value!r}")

    def to_config(self) -> dict[str, Any]:
        return {key.replace("_", "-"): value for key, value in asdict(self).items()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Recipe:
        names = {field.name.replace("_", "-"): field.name for field in fields(cls)}
        return cls(**{names[key]: value for key, value in config.items() if key in names})


@functools.lru_cache(maxsize=2)
def images_for(dataset: str, data_root: str = "") -> gradleak.data.ImageSet:
    """The client data: ``dataset``'s test split, from ``data_root`` when given (the embedded
    CIFAR-10 images stand in for Fashion-MNIST when Debian's package is absent:
    `resolve_dataset` says which)."""
    return gradleak.data.load(dataset, data_root or None)


def resolve_dataset(dataset: str, data_root: str = "") -> tuple[str, str]:
    """The dataset the simulation uses, and a note when it is not the one asked for."""
    if dataset == "fashion-mnist" and not data_root and not Path(FASHION_ROOT).exists():
        return "embedded-cifar10", (
            f"Fashion-MNIST is not installed ({FASHION_ROOT}: apt-get install "
            "dataset-fashion-mnist); using the 20 embedded CIFAR-10 images instead"
        )
    return dataset, ""


def build_model(recipe: Recipe, images: gradleak.data.ImageSet) -> torch.nn.Module:
    """The global model, seeded: the same on the server and every client."""
    return gradleak.models.build_for(
        recipe.model, images, seed=recipe.seed, classifier_bias=recipe.classifier_bias
    )


app = ClientApp()


@app.train()
def train(message: Message, context: Context) -> Message:
    """One round of local training on this client's partition; returns parameters and
    ``num-examples`` (and writes the truth for the evaluation, never read by the audit)."""
    config = dict(single(message.content.config_records, "ConfigRecord", "received"))
    recipe = Recipe.from_config(config)
    images = images_for(recipe.dataset, recipe.data_root)
    model = build_model(recipe, images)
    model.load_state_dict(
        single(message.content.array_records, "ArrayRecord", "received").to_torch_state_dict()
    )
    partition = int(context.node_config.get("partition-id", 0))
    server_round = int(config.get("server-round", 1))
    rng = np.random.default_rng([recipe.seed, partition, server_round])
    count = len(images.labels)
    start = (partition * PARTITION) % count
    pool = (start + np.arange(min(PARTITION, count))) % count
    augmentation = parse_augmentation(recipe.augment)
    settings = ClientUpdate(optimizer=recipe.optimizer, lr=recipe.lr, momentum=recipe.momentum)
    optimizer = CLIENT_OPTIMIZERS[recipe.optimizer](list(model.parameters()), settings)
    # Eval mode, as gradleak's clients step (batch-norm statistics frozen: a batch of one has
    # none of its own); Opacus needs training mode (it refuses batch norm anyway).
    stepper, engine = model, None
    if recipe.max_grad_norm > 0:
        stepper, optimizer, engine = _private(model, optimizer, recipe, images, pool)
    labels, seen = [], []
    loss = torch.zeros(())
    for _ in range(recipe.local_steps):
        index = rng.choice(pool, recipe.batch_size, replace=recipe.batch_size > len(pool))
        inputs, targets = augmentation.targets(
            images.normalise(images.images[index]),
            images.labels[index],
            images.num_classes,
            rng,
        )
        optimizer.zero_grad()
        loss = soft_cross_entropy(stepper(inputs), targets)
        loss.backward()
        optimizer.step()
        labels.append(targets.double().tolist())
        seen.append(inputs.double().tolist())
    truth_dir = config.get(TRUTH_KEY)
    if truth_dir:
        truth = {
            "round": server_round,
            "node": message.metadata.dst_node_id,
            "labels": labels,
            "inputs": seen,
            "mean": list(images.mean),
            "std": list(images.std),
        }
        write_atomic(
            Path(str(truth_dir)) / f"round-{server_round}-node-{message.metadata.dst_node_id}.json",
            json.dumps(truth),
        )
    examples = recipe.batch_size * recipe.local_steps
    metrics = {"num-examples": examples, "train-loss": float(loss)}
    if engine is not None and recipe.noise_multiplier > 0:
        metrics[EPSILON] = float(engine.get_epsilon(DELTA))
    content = RecordDict(
        {"arrays": ArrayRecord(model.state_dict()), "metrics": MetricRecord(metrics)}
    )
    return Message(content=content, reply_to=message)


def _private(model, optimizer, recipe: Recipe, images, pool):
    """The client made private by Opacus (fixed batches of B from its partition)."""
    from opacus import PrivacyEngine

    from gradleak.integrations.opacus import quiet

    dataset = torch.utils.data.TensorDataset(
        images.normalise(images.images[pool]), images.labels[pool]
    )
    loader = torch.utils.data.DataLoader(dataset, batch_size=recipe.batch_size)
    with quiet():
        engine = PrivacyEngine(accountant="rdp")
        private_model, private_optimizer, _loader = engine.make_private(
            module=model.train(),
            optimizer=optimizer,
            data_loader=loader,
            noise_multiplier=recipe.noise_multiplier,
            max_grad_norm=recipe.max_grad_norm,
            poisson_sampling=False,
        )
    return private_model, private_optimizer, engine


def server_app(recipe: Recipe, audit: LeakageAudit, rounds: int, truth_dir: Path) -> ServerApp:
    """A ServerApp that runs ``audit`` (around FedAvg) for ``rounds`` rounds of ``recipe``."""
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        images = images_for(recipe.dataset, recipe.data_root)
        model = build_model(recipe, images)
        config = ConfigRecord(recipe.to_config() | {TRUTH_KEY: str(truth_dir)})
        audit.start(
            grid=grid,
            initial_arrays=ArrayRecord(model.state_dict()),
            num_rounds=rounds,
            train_config=config,
        )

    return server


def run(
    recipe: Recipe, *, clients: int, rounds: int, records: Path, truth_dir: Path, state_dir: Path
) -> LeakageAudit:
    """The simulation, offline: ``clients`` supernodes on Ray (one CPU each, Ray and Flower
    state under ``state_dir``). Returns the audit (its ``records`` and ``failed_rounds``)."""
    from flwr.simulation import run_simulation

    os.environ.setdefault("FLWR_HOME", str(state_dir / "flwr"))
    # Ray's notice that it will stop overriding accelerator variables: no GPU is used here.
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    audit = LeakageAudit(
        FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_available_nodes=clients),
        records=records,
        family="auto",
        model=build_model(recipe, images_for(recipe.dataset, recipe.data_root)),
    )
    run_simulation(
        server_app=server_app(recipe, audit, rounds, truth_dir),
        client_app=app,
        num_supernodes=clients,
        backend_config={
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": {
                "num_cpus": max(1, min(clients, os.cpu_count() or 1)),
                "_temp_dir": str(state_dir / "ray"),
                "logging_level": "ERROR",
                "log_to_driver": False,
            },
        },
    )
    return audit


__all__ = ["Recipe", "app", "resolve_dataset", "run", "server_app"]
