"""A run launcher that starts each run in a process forked from a warm one.

Dagster's default launcher asks the code server to *spawn* a fresh interpreter per run, which then
imports Dagster, torch and the model library before its first video: ~3 s of start and ~2 s of
``import timm`` on the 2-core VM, paid by every run (benchmarks/RESULTS.md). Here a
``multiprocessing`` forkserver imports the libraries once (``preload``), and each run is a fork of
it that runs Dagster's own run worker (``dagster api execute_run``'s body). The modules the
instance's storages come from are preloaded too: a worker rebuilds the instance first thing, and
SQLite's (SQLAlchemy, alembic, Dagster's storage modules) took ~0.3 s of every run's start on the
2-core VM. The code location's own modules are not: a run imports them fresh, so a reloaded code
location runs its new code.

The worker's pid (and start time, against pid reuse) is a run tag, which gives run monitoring a
health check: a run whose worker died (``kill -9``, the OOM killer) is marked failed, and its pool
slots are freed (``run_monitoring`` in ``dagster.yaml``). Cancelling a run interrupts its worker.

A code location with its own interpreter (``executable_path``) goes the default way, through
its code server.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import socket
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dagster import Array, Field, Float
from dagster._core.launcher import DefaultRunLauncher
from dagster._core.launcher.base import CheckRunHealthResult, LaunchRunContext, WorkerStatus
from dagster._core.run_coordinator import QueuedRunCoordinator, SubmitRunContext
from dagster._core.storage.dagster_run import DagsterRun
from dagster._serdes import ConfigurableClassData, serialize_value

WORKER_TAG = "vid_assets/run_worker"  # host:pid:start time of the process running the run
DEFAULT_PRELOAD = ["dagster", "dagster._cli.api", "numpy", "av", "zarr", "torch", "torchvision", "timm", "onnxruntime"]


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks (Linux), None if it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


def _in_daemon() -> bool:
    """Whether this is ``dagster-daemon`` (``dagster dev`` starts one): the process that launches runs.
    Not a run worker: multiprocessing gives its children the parent's ``sys.argv``."""
    if multiprocessing.parent_process() is not None:
        return False
    return "daemon" in Path(sys.argv[0]).name or "_daemon" in Path(sys.argv[0]).parts


def _run_worker(run_id: str, instance_ref: str) -> None:
    """In the forked process: Dagster's run worker, as ``dagster api execute_run`` runs it. What the
    forkserver imported is frozen out of the garbage collector's sight (it is never garbage, and
    scanning it would touch, and copy, the shared pages)."""
    gc.freeze()
    from dagster._cli.api import _execute_run_command_body
    from dagster._core.instance import DagsterInstance, InstanceRef
    from dagster._serdes import deserialize_value
    from dagster._utils.interrupts import capture_interrupts

    with capture_interrupts(), DagsterInstance.from_ref(deserialize_value(instance_ref, InstanceRef)) as instance:
        _execute_run_command_body(run_id, instance, lambda _event: None, set_exit_code_on_failure=False)


class WarmRunLauncher(DefaultRunLauncher):
    def __init__(self, preload: Sequence[str] = DEFAULT_PRELOAD, inst_data: ConfigurableClassData | None = None):
        super().__init__(inst_data=inst_data)
        self._preload = list(preload)
        self._ctx = multiprocessing.get_context("forkserver")  # its preload is set with the instance's
        self._workers: dict[str, multiprocessing.process.BaseProcess] = {}

    @classmethod
    def config_type(cls) -> dict:
        return {"preload": Field(Array(str), is_required=False, default_value=DEFAULT_PRELOAD)}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]) -> WarmRunLauncher:
        return cls(inst_data=inst_data, **config_value)

    def register_instance(self, instance) -> None:
        super().register_instance(instance)
        storages = (instance.run_storage, instance.event_log_storage, instance.schedule_storage)
        modules = [type(s).__module__ for s in storages]
        self._ctx.set_forkserver_preload(list(dict.fromkeys([*self._preload, *modules])))
        if _in_daemon():  # the process that launches runs: warm up now
            threading.Thread(target=self._warm, name="warm-run-launcher", daemon=True).start()

    def _warm(self) -> None:
        from multiprocessing import forkserver

        forkserver.ensure_running()

    # -- launching --------------------------------------------------------------------------------
    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        origin = run.job_code_origin
        if origin is None or (origin.executable_path and origin.executable_path != sys.executable):
            super().launch_run(context)  # another interpreter: its code server starts the run
            return
        worker = self._ctx.Process(
            target=_run_worker,
            args=(run.run_id, serialize_value(self._instance.get_ref())),
            name=f"dagster-run-{run.run_id[:8]}",
        )
        worker.start()
        self._workers = {k: w for k, w in self._workers.items() if w.exitcode is None}
        self._workers[run.run_id] = worker
        self._instance.add_run_tags(
            run.run_id, {WORKER_TAG: f"{socket.gethostname()}:{worker.pid}:{_start_time(worker.pid) or ''}"}
        )
        self._run_ids.add(run.run_id)

    def _worker(self, run: DagsterRun) -> tuple[str, int, str] | None:
        tag = run.tags.get(WORKER_TAG)
        if not tag:
            return None
        host, pid, started = tag.rsplit(":", 2)
        return host, int(pid), started

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id) if self.has_instance else None
        worker = self._worker(run) if run else None
        if worker is None:
            return super().terminate(run_id)
        if run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        host, pid, started = worker
        if host != socket.gethostname() or _start_time(pid) != started:
            return False
        os.kill(pid, signal.SIGINT)  # the worker's capture_interrupts turns it into a cancellation
        return True

    # -- run monitoring ---------------------------------------------------------------------------
    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        worker = self._worker(run)
        if worker is None:
            # launched through a code server: that server watches its own run processes
            return CheckRunHealthResult(WorkerStatus.UNKNOWN if run.is_finished else WorkerStatus.RUNNING)
        host, pid, started = worker
        if host != socket.gethostname():
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"worker on {host}: not checked from here")
        if _start_time(pid) == started:
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(pid))
        local = self._workers.get(run.run_id)
        if local is not None:  # the forkserver reaps it and sends its status just after it is gone
            local.join(timeout=2.0)
        code = f" with exit code {local.exitcode}" if local is not None and local.exitcode is not None else ""
        return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker (pid {pid}) exited{code} before the run ended")


class WarmQueuedRunCoordinator(QueuedRunCoordinator):
    """Dagster's run queue, with three changes. In the daemon it builds the run launcher at start
    (Dagster builds it at the first launch), so that the launcher's warm-up overlaps the daemon's
    idle time rather than the first run. A run's pools get their default limit when the run is
    queued, not at the daemon's next dequeue pass. And ``dequeue_interval_seconds`` takes
    fractions: Dagster's field is whole seconds, while its daemon loop waits in 0.5-s steps, so
    0.5 is the shortest wait it can keep (a queued run waited ~0.8 s at 1).

    Why the second: the dequeue pass only counts pools that already have a limit row, and creates
    missing rows during the pass. So on a fresh instance, two runs of the ``gpu`` pool queued
    together (a backfill's first two batches) were both launched. The second then waited for the
    slot inside its run, and Dagster's step loop polls a pending claim without sleeping: a core
    spun for the first run's whole length. Measured on the 2-core VM: the first run's engine took
    35 s instead of 15 s (session 19, benchmarks/RESULTS.md)."""

    def __init__(self, dequeue_interval_seconds: float | None = None, **kwargs: Any) -> None:
        whole = None if dequeue_interval_seconds is None else max(1, round(dequeue_interval_seconds))
        super().__init__(dequeue_interval_seconds=whole, **kwargs)
        self._dequeue_interval = dequeue_interval_seconds

    @property
    def dequeue_interval_seconds(self) -> float:  # what the daemon's dequeue loop is built with
        return super().dequeue_interval_seconds if self._dequeue_interval is None else self._dequeue_interval

    @classmethod
    def config_type(cls) -> dict:
        fields = dict(super().config_type())
        fields["dequeue_interval_seconds"] = Field(
            Float, is_required=False, description="Seconds between the daemon's passes over the queue (0.5 at least)."
        )
        return fields

    def register_instance(self, instance) -> None:
        super().register_instance(instance)
        if _in_daemon():
            instance.run_launcher  # noqa: B018 - built for its warm-up

    def submit_run(self, context: SubmitRunContext) -> DagsterRun:
        self._give_pools_their_limit(context.dagster_run)
        return super().submit_run(context)

    def _give_pools_their_limit(self, run: DagsterRun) -> None:
        storage = self._instance.event_log_storage
        pools = set(run.run_op_concurrency.all_pools or ()) if run.run_op_concurrency else set()
        if not pools or not storage.supports_global_concurrency_limits:
            return
        if self._instance.global_op_concurrency_default_limit is None:
            return
        for pool in pools - storage.get_concurrency_keys():
            storage.initialize_concurrency_limit_to_default(pool)
