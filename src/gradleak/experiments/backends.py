"""Where trials run: in this process, in local worker processes, or on a Ray cluster.

Every backend takes the same picklable `TrialTask`s and yields ``(task, records)`` as trials
finish, in any order; the runner alone writes records, so the output does not depend on the
backend.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context

from gradleak.experiments.suites import SUITES
from gradleak.experiments.suites.base import Record, TrialTask

BACKENDS = ("local", "ray")


def execute(task: TrialTask) -> tuple[TrialTask, list[Record]]:
    """Run one trial (in whatever process this is called)."""
    return task, SUITES[task.suite].run_trial(task)


def _one_thread() -> None:
    """Workers share the cores: one torch thread each avoids oversubscription."""
    import torch

    torch.set_num_threads(1)


def run_local(
    tasks: Sequence[TrialTask], *, workers: int
) -> Iterator[tuple[TrialTask, list[Record]]]:
    """``workers == 1``: in this process, in order. Otherwise a pool of spawned processes,
    at most ``2 * workers`` trials in flight so results stream back as they finish."""
    if workers == 1:
        for task in tasks:
            yield execute(task)
        return
    pending = iter(tasks)
    context = get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread) as pool:
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
    _one_thread()
    return execute(task)


def default_workers() -> int:
    """One worker per CPU this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
