"""Dagster's SQLite storage, writing a batch of asset events in one transaction per database.

A batch run reports four materializations per video. Dagster hands such events over in batches
when ``DAGSTER_EVENT_BATCH_SIZE`` is set (``vid_assets.definitions`` sets it), but its SQLite
event log stores a batch one event at a time, and each event opens both databases (the run's and
the cross-run index), commits and syncs: ~5 ms an event on the 2-core VM (benchmarks/RESULTS.md).
Postgres already writes a batch in one statement. Here a batch of asset events costs one
transaction in the run's database and one in the index, whatever its size, with one statement
per table: each event is serialized once, the index hands its ids back from one multi-row
``INSERT ... RETURNING``, check results update their planned rows in one ``executemany``, and an
asset's "latest event" row is written once per batch (1,024 events of a 128-video run: 0.76 s
with a statement per event, 0.35 s so; RESULTS.md, session 18). Batches holding other kinds of
events (run status) go the stock way, event by event.

The on-disk layout is the stock one (``$DAGSTER_HOME/history``): an existing instance keeps its
history; remove the ``storage:`` block from ``dagster.yaml`` to go back to the stock class.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import contextmanager, nullcontext

import sqlalchemy as db
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS, DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable, SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)

from vid_assets.instance.sqlite import PooledSqliteRunStorage, PooledSqliteScheduleStorage, engine_for, keep_true


class BatchingSqliteEventLogStorage(SqliteEventLogStorage):
    @contextmanager
    def _connect(self, shard: str):
        """Dagster's, on this process's engine for the shard (``instance/sqlite.py``): pooled
        for the index, without a pool for a run's own database (whose closes the log watchers see)."""
        with self._db_lock:
            conn_string = self.conn_string_for_shard(shard)
            engine = engine_for(conn_string, pooled=shard == INDEX_SHARD_NAME)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def has_table(self, table_name: str) -> bool:
        """Tables found once stay (Dagster asks before every asset event: ~13 times per video of
        a batch run, measured)."""
        seen = self.__dict__.setdefault("_tables_seen", set())
        if table_name not in seen:
            engine = engine_for(self.conn_string_for_shard(INDEX_SHARD_NAME))
            with engine.connect() as conn:
                if engine.dialect.has_table(conn, table_name):
                    seen.add(table_name)
        return table_name in seen

    def index_connection(self):
        """Inside a batch, the batch's own connection (Dagster's check-event writers open their
        own, one per event; a second connection would also wait on the batch's write lock)."""
        shared = getattr(self._batch, "conn", None)
        return nullcontext(shared) if shared is not None else super().index_connection()

    @property
    def _batch(self) -> threading.local:
        return self.__dict__.setdefault("_batch_local", threading.local())

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        runs = {e.run_id for e in events}
        if not events or len(runs) != 1 or not all(_kind(e) for e in events):
            super().store_event_batch(events)
            return
        # each event serialized once, and each table written with one statement for the batch
        # (SQLite's multi-row INSERT ... RETURNING hands back the index's ids in order)
        rows = [self._event_to_row(e) for e in events]
        with self.run_connection(events[0].run_id) as conn:
            conn.execute(SqlEventLogStorageTable.insert(), rows)
        with self.index_transaction() as conn:
            self._batch.conn = conn
            try:
                insert = SqlEventLogStorageTable.insert().returning(
                    SqlEventLogStorageTable.c.id, sort_by_parameter_order=True
                )
                ids = [row[0] for row in conn.execute(insert, rows)]
                asset = [(e, i) for e, i in zip(events, ids, strict=True) if _kind(e) == "asset"]
                if asset:
                    self._store_asset_event_tags(conn, [e for e, _ in asset], [i for _, i in asset])
                    # an asset's row holds its latest event: the batch's last one per asset is enough
                    latest = {e.dagster_event.asset_key: (e, i) for e, i in asset}
                    for event, event_id in latest.values():
                        self._store_asset_event(conn, event, event_id)
                checks = [(e, i, r["event"]) for e, i, r in zip(events, ids, rows, strict=True) if _kind(e) == "check"]
                if checks:
                    self._store_check_evaluations(conn, checks)
            finally:
                self._batch.conn = None

    def _store_check_evaluations(self, conn, checks: list[tuple[EventLogEntry, int, str]]) -> None:
        """A run's planned checks as rows (one per check and partition), then its check results
        onto those rows, in one statement each; anything else (a result with no planned row) goes
        Dagster's way."""
        planned = DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED
        plans = [c for c in checks if c[0].dagster_event_type == planned]
        results = [c for c in checks if c[0].dagster_event_type != planned]
        if plans:
            self._store_check_plans(conn, plans)
        if results:
            self._store_check_results(conn, results)

    def _store_check_plans(self, conn, plans: list[tuple[EventLogEntry, int, str]]) -> None:
        """The rows Dagster's ``_store_asset_check_evaluation_planned`` writes, with the event
        serialized once: Dagster serializes it again for every partition, and the event holds the
        run's whole partition subset, so a run of n videos cost n^2 (512 videos: ~0.6 s of the
        run's start)."""
        rows = [
            {
                "asset_key": plan.asset_key.to_string(),
                "check_name": plan.check_name,
                "partition": key,
                "run_id": event.run_id,
                "execution_status": AssetCheckExecutionRecordStatus.PLANNED.value,
                "evaluation_event": text,
                "evaluation_event_timestamp": self._event_insert_timestamp(event),
                "evaluation_event_storage_id": event_id,
            }
            for event, event_id, text in plans
            for plan in [event.dagster_event.event_specific_data]
            for key in (plan.partitions_subset.get_partition_keys() if plan.partitions_subset else [None])
        ]
        if rows:
            conn.execute(_CHECKS.insert(), rows)

    def _store_check_results(self, conn, checks: list[tuple[EventLogEntry, int, str]]) -> None:
        """Check results onto the rows their planned checks made, in one statement, as Dagster's
        ``_update_asset_check_evaluation`` writes them one at a time."""
        planned = all(
            e.dagster_event_type == DagsterEventType.ASSET_CHECK_EVALUATION
            and e.dagster_event.event_specific_data.partition is not None
            for e, _, _ in checks
        )
        if planned:
            params = [self._check_params(e, i, text) for e, i, text in checks]
            if conn.execute(_CHECK_RESULT_UPDATE, params).rowcount == len(params):
                return
        for event, event_id, _ in checks:  # Dagster's own path, row by row (idempotent)
            self.store_asset_check_event(event, event_id)

    def _check_params(self, event: EventLogEntry, event_id: int, text: str) -> dict:
        result = event.dagster_event.event_specific_data
        target = result.target_materialization_data
        passed = AssetCheckExecutionRecordStatus.SUCCEEDED if result.passed else AssetCheckExecutionRecordStatus.FAILED
        return {
            "k_asset": result.asset_key.to_string(),
            "k_check": result.check_name,
            "k_run": event.run_id,
            "k_partition": result.partition,
            "v_status": passed.value,
            "v_event": text,
            "v_time": self._event_insert_timestamp(event),
            "v_event_id": event_id,
            "v_target_id": target.storage_id if target else None,
        }


_CHECKS = AssetCheckExecutionsTable
# a check result onto its planned row: (asset, check, run, partition) names it, as in Dagster's update
_CHECK_RESULT_UPDATE = (
    _CHECKS.update()
    .where(
        db.and_(
            _CHECKS.c.asset_key == db.bindparam("k_asset"),
            _CHECKS.c.check_name == db.bindparam("k_check"),
            _CHECKS.c.run_id == db.bindparam("k_run"),
            _CHECKS.c.partition == db.bindparam("k_partition"),
        )
    )
    .values(
        execution_status=db.bindparam("v_status"),
        evaluation_event=db.bindparam("v_event"),
        evaluation_event_timestamp=db.bindparam("v_time"),
        evaluation_event_storage_id=db.bindparam("v_event_id"),
        materialization_event_storage_id=db.bindparam("v_target_id"),
    )
)


def _kind(event: EventLogEntry) -> str | None:
    """``asset`` / ``check`` for the events a batch may hold, None for any other."""
    if not event.is_dagster_event:
        return None
    if event.dagster_event_type in ASSET_EVENTS:
        return "asset"
    return "check" if event.dagster_event_type in ASSET_CHECK_EVENTS else None


keep_true(BatchingSqliteEventLogStorage, "has_asset_key_col", "has_secondary_index")


class BatchingSqliteStorage(DagsterSqliteStorage):
    """The stock SQLite layout and tables: the batching event log, and runs and schedules on
    kept engines (``instance/sqlite.py``)."""

    def __init__(self, base_dir: str, inst_data=None) -> None:
        self.base_dir = base_dir
        self._run_storage = PooledSqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = BatchingSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = PooledSqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        DagsterStorage.__init__(self)  # DagsterSqliteStorage's own would build the stock storages first

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> BatchingSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)
