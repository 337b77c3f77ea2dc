"""Batch runs of the embed job in the calling process: ``vid-assets register FOLDER --run``.

Registering a folder and then running ``dagster job execute`` costs two commands, each importing
Dagster (and the second torch), and the user has to write the run's partition-range tags. Here one
command registers, then runs the new and stale videos as the backfill daemon would: consecutive
partitions in runs of ``VID_ASSETS_BATCH`` videos, each a real run in the instance's history (the
UI shows it, ``vid-assets status`` counts it), executed in this process. The bar counts videos as
the run reports them stored (``live_report.py``: every few seconds), read from the run's own
events by a thread that asks the instance twice a second.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field

import dagster as dg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from vid_assets import settings
from vid_assets.defs.videos.partitions import videos_partitions
from vid_assets.defs.videos.sensors import RANGE_END, RANGE_START, contiguous_runs
from vid_assets.defs.videos.status import chains

# The terminal shows the bar and the summary (each failed video with its stage and reason); every
# event, stack traces included, still goes to the event log and the UI.
SILENT = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass
class RunsOutcome:
    """What the runs did: run ids, videos stored, and failed videos with stage and reason."""

    runs: list[str] = field(default_factory=list)
    stored: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    up_to_date: list[str] = field(default_factory=list)
    quarantined: dict[str, str] = field(default_factory=dict)  # failed before: not retried
    stale: list[str] = field(default_factory=list)  # stored before, under another config or code


def plan_batches(todo: list[str], all_keys: list[str], batch: int) -> list[list[str]]:
    """``todo`` as runs of at most ``batch`` videos, each over consecutive partitions (a run names
    its videos by a partition range, as a backfill's do)."""
    return [run[i : i + batch] for run in contiguous_runs(todo, all_keys) for i in range(0, len(run), batch)]


def outdated(instance: dg.DagsterInstance, defs: dg.Definitions, keys: list[str]) -> dict[str, str]:
    """Keys whose stored features are missing or stale (a config or code version changed since,
    see ``status.stale_partitions``), with which of the two."""
    from vid_assets.defs.videos.status import stale_partitions

    # done in every feature set (the embed job runs them all)
    done = set.intersection(*(set(instance.get_materialized_partitions(c[-1])) for c in chains(defs)))
    stale = set().union(*stale_partitions(instance, defs).values())
    return {k: "missing" if k not in done else "stale" for k in keys if k not in done or k in stale}


def run_outdated(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    keys: list[str],
    console: Console,
    batch: int | None = None,
    retry_failed: bool = False,
    run_config: dict | None = None,
) -> RunsOutcome:
    """Run the embed job over those of ``keys`` whose stored features are missing or stale. Videos
    whose decode or store failed before are left out, as the folder sensor leaves them out (their
    key is their content's hash, so they would fail again), unless ``retry_failed``. ``run_config``:
    Dagster run config (resources' per-run fields: device, batch size); the terminal's logger is
    silenced unless it sets one."""
    todo = outdated(instance, defs, keys)
    catalog = defs.resources["workspace"].catalog()
    earlier = _failure_reasons(catalog)
    outcome = RunsOutcome(
        up_to_date=[k for k in keys if k not in todo], stale=[k for k, v in todo.items() if v == "stale"]
    )
    if not retry_failed:
        outcome.quarantined = {k: earlier[k] for k in todo if k in earlier}
        todo = {k: v for k, v in todo.items() if k not in earlier}
    if not todo:
        return outcome
    all_keys = list(instance.get_dynamic_partitions(videos_partitions.name))
    job = defs.resolve_job_def("embed_videos")
    run_config = {**SILENT, **(run_config or {})}
    stores = {chain[-1] for chain in chains(defs)}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("videos stored", total=len(todo))
        for batch_keys in plan_batches(list(todo), all_keys, batch or settings.batch()):
            done = len(outcome.stored)
            _run_batch(
                job,
                instance,
                batch_keys,
                run_config,
                stores,
                outcome,
                lambda n, b=done: bar.update(task, completed=b + n),
            )
            bar.update(task, completed=len(outcome.stored))
    reasons = _failure_reasons(catalog)
    outcome.failed = {
        k: reasons.get(k) or outcome.failed.get(k) or "not stored (see the run in the UI)"
        for k in todo
        if k not in outcome.stored
    }
    return outcome


def print_outcome(console: Console, outcome: RunsOutcome) -> None:
    console.print(
        f"{len(outcome.stored)} stored, {len(outcome.failed)} failed, {len(outcome.up_to_date)} already"
        f" up to date; runs: {' '.join(r[:8] for r in outcome.runs) or 'none'}"
    )
    for key, reason in outcome.failed.items():
        console.print(f"[red]failed[/red] {key}: {reason}")
    for key, reason in outcome.quarantined.items():
        console.print(f"[yellow]failed before, not retried[/yellow] (--retry-failed) {key}: {reason}")


def _run_batch(job, instance, keys: list[str], run_config: dict, stores: set, outcome: RunsOutcome, on_count) -> None:
    """One run over ``keys`` (a range, or one partition), executed here; what it stored, or why not."""
    run_id = str(uuid.uuid4())  # Dagster's run ids are uuid4 strings; known before the run starts
    tags = {} if len(keys) == 1 else {RANGE_START: keys[0], RANGE_END: keys[-1]}
    with _Watch(instance, run_id, stores, on_count) as watch:
        result = job.execute_in_process(
            instance=instance,
            run_id=run_id,
            tags=tags,
            partition_key=keys[0] if len(keys) == 1 else None,
            run_config=run_config,
            raise_on_error=False,
        )
    outcome.runs.append(run_id)
    stored = watch.stored_keys()
    outcome.stored += [k for k in keys if k in stored]
    if not result.success:
        failure = next((e for e in result.all_events if e.is_step_failure), None)
        message = failure.step_failure_data.error.message.strip() if failure else "run failed"
        outcome.failed.update({k: f"run {run_id[:8]}: {message.splitlines()[0][:300]}" for k in keys})


def _failure_reasons(catalog) -> dict[str, str]:
    return {f["id"]: f"{f['stage']}: {f['message']}" for f in catalog.failures()}


class _Watch:
    """Counts the videos a run has reported stored (in every feature set), from its events."""

    def __init__(self, instance: dg.DagsterInstance, run_id: str, stores: set[dg.AssetKey], on_count) -> None:
        self.instance, self.run_id, self.stores, self.on_count = instance, run_id, stores, on_count
        self._seen: dict[str, set[dg.AssetKey]] = {}
        self._cursor: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="run-progress", daemon=True)

    def __enter__(self) -> _Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._poll()  # what the run reported last

    def stored_keys(self) -> set[str]:
        return {k for k, sets in self._seen.items() if sets >= self.stores}

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self._poll()

    def _poll(self) -> None:
        conn = self.instance.get_records_for_run(
            self.run_id, cursor=self._cursor, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        )
        self._cursor = conn.cursor
        for record in conn.records:
            event = record.event_log_entry.dagster_event
            if event.asset_key in self.stores and event.partition:
                self._seen.setdefault(event.partition, set()).add(event.asset_key)
        self.on_count(len(self.stored_keys()))
