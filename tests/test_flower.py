"""The Flower audit: a real offline Flower simulation (Ray backend), the strategy wrapper on
Flower's own messages, and the update audit on real torch.optim steps."""

import csv
import json

import numpy as np
import pytest
import torch

import gradleak
from dataset_fixtures import cifar10_folder
from gradleak.cli.main import main
from gradleak.integrations.audit import TrainSettings, audit_update

flwr = pytest.importorskip("flwr", reason="the Flower extra: pip install -e '.[flower]'")

from flwr.app import ArrayRecord, ConfigRecord, Error, Message, RecordDict  # noqa: E402
from flwr.serverapp.strategy import FedAvg  # noqa: E402

from gradleak.integrations.flower import LeakageAudit  # noqa: E402


@pytest.fixture
def flower_home(tmp_path, monkeypatch):
    monkeypatch.setenv("FLWR_HOME", str(tmp_path / "flwr"))
    return tmp_path


def test_real_simulation_two_clients_one_round(flower_home, capsys):
    """`gradleak audit flower` runs Flower's run_simulation offline; every client update of a
    single input leaks its label, and the evaluation finds no false accept."""
    out = flower_home / "report"
    code = main(["audit", "flower", "--clients", "2", "--rounds", "1", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    clients = [r for r in records if r["client"] != "aggregate"]
    assert len({r["client"] for r in clients}) == 2
    assert {r["attack"] for r in clients} == {"label"}
    with (out / "audit.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    label_rows = [row for row in rows if row["attack"] == "label"]
    assert all(row["leaked"] == "True" and row["correct"] == "1" for row in label_rows), rows
    assert all(row["false_accepts"] == "0" for row in rows)
    assert len(list((out / "truth").glob("*.json"))) == 2
    assert (out / "audit.png").stat().st_size > 0
    assert "client updates audited | 2" in (out / "report.md").read_text()


def test_out_folder_checked_before_the_simulation(tmp_path, capsys):
    out = tmp_path / "exists"
    out.mkdir()
    assert main(["audit", "flower", "--out", str(out)]) == 2
    assert "--out" in capsys.readouterr().err


@pytest.fixture
def server_task(monkeypatch):
    """The identity Flower gives the process that runs a ServerApp (a message a server sends
    needs it; the real simulation sets it in-process, so without this a test passed only after
    that one)."""
    from flwr.supercore.task_identity import TaskIdentity

    for name, value in (("_run_id", 1), ("_node_id", 0), ("_task_id", 1)):
        monkeypatch.setattr(TaskIdentity, name, value)


def _sent(node: int, model: torch.nn.Module, lr: float = 0.1) -> Message:
    content = RecordDict(
        {"arrays": ArrayRecord(model.state_dict()), "config": ConfigRecord({"lr": lr})}
    )
    return Message(content=content, dst_node_id=node, message_type="train")


def test_every_client_failed_is_loud(server_task):
    """Flower carries on when every reply is an error; the audit records each failure and
    names the round in ``failed_rounds``."""
    model = gradleak.models.build("lenet", num_classes=10, seed=0, in_channels=1, image_size=28)
    audit = LeakageAudit(FedAvg())
    sent = [_sent(node, model) for node in (1, 2)]
    replies = [Message(Error(code=0, reason="boom"), reply_to=message) for message in sent]
    arrays, metrics = audit.aggregate_train(1, replies)
    assert arrays is None
    assert audit.failed_rounds == [1]
    assert all("the client failed: boom" in record.reason for record in audit.records)
    assert metrics["gradleak-updates-leaked"] == 0


def test_records_file_is_not_overwritten(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text("mine\n")
    with pytest.raises(FileExistsError, match="records"):
        LeakageAudit(FedAvg(), records=path)
    assert path.read_text() == "mine\n"


def test_not_a_strategy_is_refused():
    with pytest.raises(TypeError, match="Strategy"):
        LeakageAudit(object())


def _client_step(optimizer, **settings):
    """One real torch.optim step of a LeNet on one smoothed Fashion-MNIST-sized input."""
    model = gradleak.models.build("lenet", num_classes=10, seed=0, in_channels=1, image_size=28)
    before = {name: p.detach().clone() for name, p in model.state_dict().items()}
    inputs = torch.randn(1, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    target = gradleak.labels.smoothing(3, 10, 0.1, dtype=torch.float32).probabilities[None]
    step = optimizer(model.parameters(), **settings)
    loss = torch.sum(-target * torch.log_softmax(model(inputs), dim=1))
    loss.backward()
    step.step()
    return before, model.state_dict(), target[0]


def test_audit_reads_momentum_sgd_updates():
    before, after, target = _client_step(torch.optim.SGD, lr=0.05, momentum=0.9)
    settings = TrainSettings.from_config({"lr": 0.05, "momentum": 0.9})
    (record,) = audit_update(before, after, settings, num_samples=1)
    assert record.attack == "label" and record.leaked, record.reason
    assert np.abs(np.asarray(record.labels[0]) - target.numpy()).sum() < 1e-2


def test_audit_refuses_adam_and_local_steps():
    before, after, _target = _client_step(torch.optim.Adam, lr=1e-3)
    (record,) = audit_update(before, after, TrainSettings(1e-3, "adam"), num_samples=1)
    assert not record.leaked and "sign" in record.reason
    before, after, _target = _client_step(torch.optim.SGD, lr=0.1)
    (record,) = audit_update(before, after, TrainSettings(0.1, local_steps=2), num_samples=1)
    assert not record.leaked and "local_steps=2" in record.reason


def test_train_config_without_lr_names_the_key():
    with pytest.raises(ValueError, match="'lr'"):
        TrainSettings.from_config({"momentum": 0.9})
    with pytest.raises(ValueError, match="unknown train-config key"):
        TrainSettings.from_config({}, {"learning-rate": 0.1})


def test_client_mod_audits_the_reply_it_passes_on(tmp_path, server_task):
    """`AuditMod` on a real Flower train message: the ClientApp's reply (a real SGD step) goes
    out unchanged, and the mod's own record says the update leaks its label."""
    from flwr.app import Context, MetricRecord, RecordDict

    from gradleak.integrations.flower import AuditMod

    model = gradleak.models.build("lenet", num_classes=10, seed=0, in_channels=1, image_size=28)
    message = _sent(1, model, lr=0.1)
    message.content["config"]["server-round"] = 2
    _before, after, target = _client_step(torch.optim.SGD, lr=0.1)  # the message's model
    reply_content = RecordDict(
        {"arrays": ArrayRecord(after), "metrics": MetricRecord({"num-examples": 1})}
    )

    def client_app(received, _context):
        return Message(content=reply_content, reply_to=received)

    records = tmp_path / "client.jsonl"
    mod = AuditMod(records=records)
    context = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})
    reply = mod(message, context, client_app)
    assert reply.content is reply_content
    (record,) = mod.records
    assert (record.round, record.attack, record.leaked) == (2, "label", True), record.reason
    assert np.abs(np.asarray(record.labels[0]) - target.numpy()).sum() < 1e-2
    assert json.loads(records.read_text())["leaked"] is True
    with pytest.raises(FileExistsError, match="records"):
        AuditMod(records=records)


def test_simulation_reads_a_local_cifar_folder(flower_home, capsys):
    """`--data-root` reaches the clients (Ray workers): a CIFAR-10 folder the user keeps."""
    folder = cifar10_folder(flower_home / "data")
    out = flower_home / "report"
    argv = ["audit", "flower", "--clients", "2", "--rounds", "1", "--dataset", "cifar10"]
    code = main([*argv, "--data-root", str(folder.parent), "--out", str(out)])
    assert code == 0, capsys.readouterr()
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert {r["attack"] for r in records if r["client"] != "aggregate"} == {"label"}
    assert "cifar10" in (out / "report.md").read_text()


def test_a_dataset_without_its_folder_is_refused_before_the_simulation(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["audit", "flower", "--dataset", "cifar10", "--out", str(out)]) == 2
    assert "--data-root PATH" in capsys.readouterr().err
    assert not out.exists()
