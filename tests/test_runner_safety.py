"""Run folders under stress: kills mid-write, damaged lines, concurrent runs, dead parents,
thread counts, failures before the first trial and Ctrl-C.

Most tests use a probe suite (instant trials that report what they saw); spawned workers
register it when they unpickle a `ProbeCase`, because they import this module to do so.
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from gradleak.cli.main import main
from gradleak.cli.report import write_report
from gradleak.experiments.config import ExperimentConfig, load_config
from gradleak.experiments.records import unique_records
from gradleak.experiments.runner import run_experiment
from gradleak.experiments.suites import CASE_TYPES, SUITES
from gradleak.experiments.suites.base import Suite

TESTS = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ProbeCase:
    """A trial that records its torch thread count; optional sleep, failure, interrupt."""

    label: str
    samples: int = 2
    per_trial: int = 2
    sleep: float = 0.0
    pid_folder: str = ""
    fail_at: int = -1
    interrupt_file: str = ""
    interrupt_trial: int = 1
    lock_file: str = ""

    @property
    def name(self) -> str:
        return self.label


def _lock_is_held(path: str) -> bool:
    handle = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(handle)
    return False


def _probe_trial(task):
    case = task.case
    if case.pid_folder:
        (Path(case.pid_folder) / str(os.getpid())).write_text("")
    if (
        case.interrupt_file
        and task.trial == case.interrupt_trial
        and Path(case.interrupt_file).exists()
    ):
        Path(case.interrupt_file).unlink()  # one Ctrl-C only, so the resume completes
        raise KeyboardInterrupt
    if task.trial == case.fail_at:
        raise RuntimeError("probe trial failed")
    locked = _lock_is_held(case.lock_file) if case.lock_file else None
    time.sleep(case.sleep)
    return [
        {
            "case": case.name,
            "method": f"m{index}",
            "trial": task.trial,
            "seed": task.seed,
            "threads": torch.get_num_threads(),
            "locked": locked,
            "seconds": time.perf_counter(),
        }
        for index in range(case.per_trial)
    ]


def _probe_report(records, folder):
    path = folder / "table.md"
    path.write_text(f"{len(records)} records\n")
    return [path]


PROBE = Suite("thread-probe", ProbeCase, _probe_trial, _probe_report, "test probe")
if PROBE.key not in SUITES:  # at import: spawned workers unpickling a ProbeCase import it too
    SUITES.add(PROBE.key, PROBE)


@pytest.fixture
def probe(monkeypatch):
    monkeypatch.setitem(CASE_TYPES, PROBE.key, ProbeCase)


def _config(*cases: ProbeCase) -> ExperimentConfig:
    cases = cases or (ProbeCase("a"), ProbeCase("b"))
    return ExperimentConfig(name="probe", suite=PROBE.key, seed=1, description="", cases=cases)


def _stable(folder: Path) -> list[str]:
    lines = (folder / "records.jsonl").read_text().splitlines()
    return sorted(
        json.dumps({k: v for k, v in json.loads(line).items() if k != "seconds"}, sort_keys=True)
        for line in lines
    )


LABELS = """
name = "small"
suite = "labels"
seed = 4

[defaults]
model = "lenet"
init = "uniform"
dataset = "embedded-cifar10"
num_classes = 10
samples = 2
methods = ["fast-search"]

[[cases]]
label_family = "smoothing"

[[cases]]
label_family = "hard"
methods = ["fast-search", "idlg"]
"""


@pytest.fixture(scope="module")
def labels_run(tmp_path_factory):
    """A finished run of the labels suite (6 records), copied by the tests that change it."""
    folder = tmp_path_factory.mktemp("labels")
    config_path = folder / "small.toml"
    config_path.write_text(LABELS)
    config = load_config(config_path, case_types=CASE_TYPES)
    run_experiment(config, folder / "run", workers=1, progress=False)
    write_report(folder / "run")
    return folder / "run"


def _copy(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(run, target)
    return target


# --- 3. rewrites are atomic ------------------------------------------------------------


class Killed(BaseException):
    """What a SIGKILL mid-write looks like from inside: nothing after it runs."""


class _KilledMidWrite:
    def __init__(self, handle):
        self.handle = handle

    def write(self, text):
        self.handle.write(text[: len(text) // 2])
        self.handle.flush()
        raise Killed

    def writelines(self, lines):
        self.write("".join(lines))

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


@pytest.mark.parametrize("target", ["records.jsonl", "manifest.json"])
def test_a_kill_while_resume_rewrites_a_file_loses_nothing(probe, tmp_path, monkeypatch, target):
    config = _config()
    out = tmp_path / "run"
    run_experiment(config, out, workers=1, progress=False)
    records = out / "records.jsonl"
    lines = records.read_text().splitlines(keepends=True)
    records.write_text("".join(lines[:-1]) + lines[-1][:10])  # torn: resume must rewrite
    before = {name: (out / name).read_bytes() for name in ("records.jsonl", "manifest.json")}
    real_open = io.open

    def crashing_open(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        if not isinstance(file, int) and target in Path(file).name and set(mode) & set("wx"):
            return _KilledMidWrite(handle)
        return handle

    monkeypatch.setattr(io, "open", crashing_open)
    monkeypatch.setattr("builtins.open", crashing_open)
    with pytest.raises(Killed):
        run_experiment(config, out, workers=1, resume=True, progress=False)
    monkeypatch.undo()
    assert (out / target).read_bytes() == before[target]
    assert not [path.name for path in out.iterdir() if path.name.endswith(".part")]


# --- 4. damage in the middle is refused, a torn last line is dropped -------------------


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a record"),
        ('{"trial": 0}', "case"),
        ('{"case": "a"}', "trial"),
        ('{"case": "a", "trial": "zero"}', "trial"),
    ],
)
def test_a_bad_line_in_the_middle_stops_resume_and_keeps_the_file(probe, tmp_path, bad, why):
    config = _config()
    out = tmp_path / "run"
    run_experiment(config, out, workers=1, progress=False)
    records = out / "records.jsonl"
    lines = records.read_text().splitlines(keepends=True)
    damaged = "".join([*lines[:2], bad + "\n", *lines[2:]])
    records.write_text(damaged)
    with pytest.raises(ValueError, match=rf"records\.jsonl.* line 3\b.*{why}"):
        run_experiment(config, out, workers=1, resume=True, progress=False)
    assert records.read_text() == damaged
    with pytest.raises(ValueError, match=r"records\.jsonl.* line 3\b"):
        write_report(out)


@pytest.mark.parametrize("torn", ['{"case": "b", "tri', '{"case": "b", "tri\n'])
def test_a_torn_last_line_is_dropped_alone(probe, tmp_path, torn):
    config = _config()
    reference, out = tmp_path / "reference", tmp_path / "run"
    run_experiment(config, reference, workers=1, progress=False)
    run_experiment(config, out, workers=1, progress=False)
    lines = (out / "records.jsonl").read_text().splitlines(keepends=True)
    (out / "records.jsonl").write_text("".join(lines[:-1]) + torn)  # b/1 lost its 2nd record
    run_experiment(config, out, workers=1, resume=True, progress=False)
    assert _stable(out) == _stable(reference)
    manifest = json.loads((out / "manifest.json").read_text())
    assert [run["trials"] for run in manifest["runs"]] == [4, 1]


def test_report_skips_a_torn_last_line_with_a_warning(labels_run, tmp_path, caplog, capsys):
    out = _copy(labels_run, tmp_path)
    records = out / "records.jsonl"
    text = records.read_text()
    records.write_text(text + text.splitlines()[0][:25])
    with caplog.at_level(logging.WARNING):
        assert main(["report", str(out)]) == 0
    assert "line 7" in caplog.text and "torn" in caplog.text
    assert "line 7" in capsys.readouterr().out


# --- 6. one run per folder; the report de-duplicates ------------------------------------


def test_a_folder_locked_by_another_run_is_refused(probe, tmp_path):
    config = _config()
    out = tmp_path / "run"
    run_experiment(config, out, workers=1, progress=False)
    handle = os.open(out / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(handle, b"4242\n")
        before = (out / "records.jsonl").read_bytes()
        with pytest.raises(OSError, match=r"in use by another gradleak run \(pid 4242\)"):
            run_experiment(config, out, workers=1, resume=True, progress=False)
        assert (out / "records.jsonl").read_bytes() == before
    finally:
        os.close(handle)


def test_the_run_holds_the_folder_lock_and_writes_its_pid(probe, tmp_path):
    out = tmp_path / "run"
    config = _config(ProbeCase("a", lock_file=str(out / ".lock")))
    run_experiment(config, out, workers=1, progress=False)
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert records and all(record["locked"] is True for record in records)
    assert (out / ".lock").read_text().split() == [str(os.getpid())]
    assert not _lock_is_held(str(out / ".lock"))  # released at the end


def test_report_keeps_the_first_of_duplicated_records_and_says_so(
    labels_run, tmp_path, caplog, capsys
):
    reference = (labels_run / "table.md").read_text()
    out = _copy(labels_run, tmp_path)
    records = out / "records.jsonl"
    lines = records.read_text().splitlines(keepends=True)
    records.write_text("".join(lines + lines[:4]))  # a concurrent run repeated 4 records
    with caplog.at_level(logging.WARNING):
        assert main(["report", str(out)]) == 0
    assert (out / "table.md").read_text() == reference
    assert "4 duplicate" in caplog.text
    assert "ignored 4 duplicate records" in capsys.readouterr().out


def test_records_at_both_gradient_scales_are_not_duplicates() -> None:
    """A label trial runs each method at every listed scale: same case, trial and method."""
    known = {"case": "c", "trial": 0, "method": "fast-search", "scale": "known"}
    unknown = {**known, "scale": "unknown"}
    records, repeats = unique_records([known, unknown, dict(known)])
    assert records == [known, unknown] and repeats == 1


# --- 7. workers die with their parent ---------------------------------------------------


def _children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(child) for child in (task / "children").read_text().split()}
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_workers_exit_when_their_parent_is_killed(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    script = tmp_path / "parent.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(TESTS)!r})\n"
        "from gradleak.experiments.backends import run_local\n"
        "from gradleak.experiments.suites.base import TrialTask\n"
        "from gradleak.experiments.suites import SUITES\n"
        "from test_runner_safety import PROBE, ProbeCase\n"
        "assert PROBE.key in SUITES  # registered at import: spawned workers import it too\n"
        "if __name__ == '__main__':\n"
        f"    case = ProbeCase('sleepy', samples=4, sleep=120, pid_folder={str(pids)!r})\n"
        "    tasks = [TrialTask('thread-probe', case, t, t, t) for t in range(4)]\n"
        "    for _ in run_local(tasks, workers=2):\n"
        "        pass\n"
    )
    parent = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(list(pids.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = {int(path.name) for path in pids.iterdir()}
        assert len(workers) == 2, "the workers never started"
        children = _children(parent.pid) | workers
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 8
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [pid for pid in children if _alive(pid)]
    for pid in survivors:  # do not leave them behind for the next test
        os.kill(pid, signal.SIGKILL)
    assert survivors == []


# --- 14. the same thread count for every backend ---------------------------------------


@pytest.fixture
def two_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


def test_in_process_and_worker_trials_see_the_same_thread_count(probe, two_threads, tmp_path):
    config = _config()
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    run_experiment(config, serial, workers=1, progress=False)
    assert torch.get_num_threads() == 2  # the caller's setting is restored
    run_experiment(config, parallel, workers=2, progress=False)
    assert _stable(serial) == _stable(parallel)
    manifest = json.loads((serial / "manifest.json").read_text())
    assert manifest["torch_threads"] == 1
    assert {json.loads(line)["threads"] for line in _stable(serial)} == {1}


# --- 12. clear errors -------------------------------------------------------------------


def test_report_names_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"does not exist"):
        write_report(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ("{not json", r"manifest\.json.*not JSON"),
        ('["a"]', r"manifest\.json.*object"),
        ('{"runs": []}', r"manifest\.json.*'config'"),
        ('{"suite": "labels", "cases": []}', r"gradleak bench labels"),
    ],
)
def test_bad_manifests_are_named_errors(labels_run, tmp_path, manifest, message):
    out = _copy(labels_run, tmp_path)
    (out / "manifest.json").write_text(manifest)
    with pytest.raises(ValueError, match=message):
        write_report(out)
    config = load_config(labels_run.parent / "small.toml", case_types=CASE_TYPES)
    with pytest.raises(ValueError, match=message):
        run_experiment(config, out, workers=1, resume=True, progress=False)


def test_a_records_folder_is_a_named_error(labels_run, tmp_path):
    out = _copy(labels_run, tmp_path)
    (out / "records.jsonl").unlink()
    (out / "records.jsonl").mkdir()
    with pytest.raises(IsADirectoryError, match=r"records\.jsonl"):
        write_report(out)
    config = load_config(labels_run.parent / "small.toml", case_types=CASE_TYPES)
    with pytest.raises(IsADirectoryError, match=r"records\.jsonl"):
        run_experiment(config, out, workers=1, resume=True, progress=False)


# --- issue 16.7: no folder from a failed start; Ctrl-C says how to resume --------------


def test_a_run_that_fails_before_its_first_record_leaves_no_folder(probe, tmp_path):
    out = tmp_path / "parent" / "run"
    with pytest.raises(RuntimeError, match="probe trial failed"):
        run_experiment(_config(ProbeCase("a", fail_at=0)), out, workers=1, progress=False)
    assert not out.exists() and not out.parent.exists()  # nor the parent it made for it
    config = _config(ProbeCase("a", fail_at=1))
    with pytest.raises(RuntimeError, match="probe trial failed"):
        run_experiment(config, out, workers=1, progress=False)
    assert len((out / "records.jsonl").read_text().splitlines()) == 2  # trial 0 is kept


def test_ctrl_c_saves_what_finished_and_prints_the_resume_command(probe, tmp_path, capsys):
    interrupt = tmp_path / "interrupt"
    interrupt.write_text("")
    config = tmp_path / "probe.toml"
    config.write_text(
        f'name = "probe"\nsuite = "thread-probe"\n[defaults]\ninterrupt_file = "{interrupt}"\n'
        '[[cases]]\nlabel = "a"\n[[cases]]\nlabel = "b"\n'
    )
    out = tmp_path / "run"
    try:
        code = main(["run", str(config), "--workers", "1", "--out", str(out), "--no-report"])
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped `gradleak run`")
    assert code == 130
    error = [line for line in capsys.readouterr().err.splitlines() if "gradleak run" in line]
    assert len(error) == 1 and "interrupted; 1 of 4 trials saved" in error[0]
    command = shlex.split(error[0].split("continue with: ", 1)[1])
    assert command[:2] == ["gradleak", "run"] and "--resume" in command and str(out) in command
    assert main(command[1:]) == 0
    assert len((out / "records.jsonl").read_text().splitlines()) == 8


def _probe_toml(tmp_path: Path, interrupt: Path, trial: int = 1) -> Path:
    config = tmp_path / "probe.toml"
    config.write_text(
        f'name = "probe"\nsuite = "thread-probe"\n[defaults]\ninterrupt_file = "{interrupt}"\n'
        f'interrupt_trial = {trial}\n[[cases]]\nlabel = "a"\n[[cases]]\nlabel = "b"\n'
    )
    interrupt.write_text("")
    return config


def _interrupt_line(capsys, command: str) -> str:
    error = [line for line in capsys.readouterr().err.splitlines() if f"gradleak {command}" in line]
    assert len(error) == 1, error
    return error[0]


def test_the_resume_command_keeps_every_option_and_the_command(probe, tmp_path, capsys):
    config = _probe_toml(tmp_path, tmp_path / "interrupt")
    out = tmp_path / "run folder"
    argv = ["bench", str(config), "--set", "seed=7", "--workers", "1", "--out", str(out)]
    assert main([*argv, "--no-report"]) == 130
    line = _interrupt_line(capsys, "bench")
    assert "interrupted; 1 of 4 trials saved in" in line
    command = shlex.split(line.split("continue with: ", 1)[1])
    assert command[:2] == ["gradleak", "bench"]
    assert command[command.index("--set") + 1] == "seed=7"
    assert command[command.index("--workers") + 1] == "1"
    # Without --set seed=7 the resume would refuse: the resolved config differs.
    assert main(command[1:]) == 0
    assert json.loads((out / "manifest.json").read_text())["config"]["seed"] == 7


def test_ctrl_c_before_the_first_trial_leaves_no_folder_and_says_so(probe, tmp_path, capsys):
    config = _probe_toml(tmp_path, tmp_path / "interrupt", trial=0)
    out = tmp_path / "new" / "run"
    assert main(["run", str(config), "--workers", "1", "--out", str(out), "--no-report"]) == 130
    line = _interrupt_line(capsys, "run")
    assert "nothing saved, no folder left" in line and not (tmp_path / "new").exists()
    command = shlex.split(line.split("start again with: ", 1)[1])
    assert "--resume" not in command and main(command[1:]) == 0


def test_ctrl_c_in_the_report_says_the_trials_are_saved(probe, tmp_path, capsys, monkeypatch):
    from gradleak.cli import report

    def interrupted(folder):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "write_report", interrupted)
    config = _probe_toml(tmp_path, tmp_path / "never", trial=-1)
    out = tmp_path / "run"
    assert main(["run", str(config), "--workers", "1", "--out", str(out)]) == 130
    line = _interrupt_line(capsys, "run")
    assert "interrupted in the report; every trial is saved" in line
    assert line.endswith(shlex.join(["gradleak", "report", str(out)]))


@pytest.mark.parametrize(
    ("labels", "extra", "message"),
    [
        (True, ["--set", "defaults.samples=0"], "samples"),
        (True, ["--set", "nonsense=1"], "unknown key"),
        (False, ["--set", "defaults.fail_at=0"], "probe trial failed"),
        # The trials that succeed sleep, so the failing ones are seen first: with two workers
        # a finished trial would otherwise be recorded before the failure (and keep the folder).
        (
            False,
            ["--set", "defaults.fail_at=0", "--set", "defaults.sleep=1", "--workers", "2"],
            "probe trial failed",
        ),
        (False, ["--out", "a-file"], "is a file, not a run folder"),
        (False, ["--out", "a-file", "--resume"], "is a file, not a run folder"),
        (False, ["--out", "a-file/run"], "is a file, not a folder"),
        (True, ["--set", "defaults.data_root=missing"], "is not a folder"),
        (True, [], "--set defaults.data_root=PATH"),  # no CIFAR-10 folder: the trial fails
        (True, ["--workers", "2"], "--set defaults.data_root=PATH"),
    ],
)
def test_a_run_that_fails_before_its_first_trial_leaves_no_folder(
    probe, tmp_path, capsys, monkeypatch, labels, extra, message
):
    monkeypatch.chdir(tmp_path)
    if labels:
        config = tmp_path / "cifar.toml"
        config.write_text(LABELS.replace("embedded-cifar10", "cifar10"))
    else:
        config = _probe_toml(tmp_path, tmp_path / "never", trial=-1)
    (tmp_path / "a-file").write_text("")
    before = sorted(path.name for path in tmp_path.iterdir())
    argv = ["run", str(config), "--workers", "1", "--no-report", *extra]
    try:
        code = main(argv)
    except RuntimeError as error:  # a trial's own failure is not an expected error: traceback
        code, text = None, str(error)
    else:
        text = capsys.readouterr().err
    assert code in (2, None) and message in text
    assert sorted(path.name for path in tmp_path.iterdir()) == before  # no runs/, no folder
