"""Where trials run: in this process, in local worker processes, or on a Ray cluster.

Every backend takes the same picklable `TrialTask`s and yields ``(task, records)`` as trials
finish, in any order; the runner alone writes records, so the output does not depend on the
backend. Every trial runs on `TRIAL_THREADS` torch threads, in this process or a worker: a
reduction's rounding depends on the thread count, so records would otherwise depend on it.
Local workers exit when their parent dies, and are stopped when the caller stops listening.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from multiprocessing import get_context

import torch

from gradleak.experiments.suites import SUITES
from gradleak.experiments.suites.base import Record, TrialTask

BACKENDS = ("local", "ray")
#: Torch threads per trial, whatever the backend (workers share the cores: no oversubscription).
TRIAL_THREADS = 1
#: How often a worker checks that its parent is still alive.
PARENT_POLL_SECONDS = 0.5


def execute(task: TrialTask) -> tuple[TrialTask, list[Record]]:
    """Run one trial (in whatever process this is called)."""
    return task, SUITES[task.suite].run_trial(task)


@contextmanager
def trial_threads() -> Iterator[None]:
    """Run the block on `TRIAL_THREADS` torch threads, restoring the caller's count after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(TRIAL_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _exit_with_parent(parent: int) -> None:
    """Poll: once the parent is gone (this process was re-parented), exit at once.

    Polling rather than prctl(PR_SET_PDEATHSIG): that signal fires when the parent *thread*
    that started the worker exits, which need not be the parent process.
    """
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)


def _start_worker(parent: int) -> None:
    """Worker initializer: trial threads, Ctrl-C left to the parent (it stops the workers),
    and a watcher that ends this worker when the parent dies."""
    torch.set_num_threads(TRIAL_THREADS)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watcher = threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True)
    watcher.start()


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel queued trials and end running ones now, instead of waiting for them to finish
    (nobody will read their results)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=5)


def run_local(
    tasks: Sequence[TrialTask], *, workers: int
) -> Iterator[tuple[TrialTask, list[Record]]]:
    """``workers == 1``: in this process, in order. Otherwise a pool of spawned processes,
    at most ``2 * workers`` trials in flight so results stream back as they finish."""
    if workers == 1:
        for task in tasks:
            with trial_threads():
                result = execute(task)
            yield result
        return
    pending = iter(tasks)
    pool = ProcessPoolExecutor(
        workers,
        mp_context=get_context("spawn"),
        initializer=_start_worker,
        initargs=(os.getpid(),),
    )
    try:
        running = set()
        for task in pending:
            running.add(pool.submit(execute, task))
            if len(running) >= 2 * workers:
                break
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
                following = next(pending, None)
                if following is not None:
                    running.add(pool.submit(execute, following))
    except BaseException:  # an error, Ctrl-C, or the caller closed this generator
        _stop_workers(pool)
        raise
    pool.shutdown()


def run_ray(
    tasks: Sequence[TrialTask], *, workers: int, address: str | None
) -> Iterator[tuple[TrialTask, list[Record]]]:
    """Distribute trials over a Ray cluster (``address``) or a local Ray with ``workers`` CPUs.

    Ray (an optional extra: ``pip install -e '.[ray]'``) schedules; gradleak only submits.
    """
    try:
        import ray
    except ImportError:
        raise ValueError(
            "--backend ray needs Ray: pip install -e '.[ray]' (or pip install ray)"
        ) from None
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=1)(_ray_execute)
    try:
        running = [remote.remote(task) for task in tasks]
        while running:
            done, running = ray.wait(running, num_returns=1)
            yield ray.get(done[0])
    finally:
        if started_here:
            ray.shutdown()


def _ray_execute(task: TrialTask) -> tuple[TrialTask, list[Record]]:
    torch.set_num_threads(TRIAL_THREADS)
    return execute(task)


def default_workers() -> int:
    """One worker per CPU this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
