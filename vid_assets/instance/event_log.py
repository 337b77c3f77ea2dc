"""Dagster's SQLite storage, writing a batch of asset events in one transaction per database.

A batch run reports four materializations per video. Dagster hands such events over in batches
when ``DAGSTER_EVENT_BATCH_SIZE`` is set (``vid_assets.definitions`` sets it), but its SQLite
event log stores a batch one event at a time, and each event opens both databases (the run's and
the cross-run index), commits and syncs: ~5 ms an event on the 2-core VM (benchmarks/RESULTS.md).
Postgres already writes a batch in one statement. Here a batch of asset events costs one
transaction in the run's database and one in the index, whatever its size: check evaluations
are written in that transaction too, and an asset's "latest event" row once per batch. Batches
holding other kinds of events (run status) go the stock way, event by event.

The on-disk layout is the stock one (``$DAGSTER_HOME/history``): an existing instance keeps its
history; remove the ``storage:`` block from ``dagster.yaml`` to go back to the stock class.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import nullcontext

from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.sqlalchemy_compat import db_result
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory


class BatchingSqliteEventLogStorage(SqliteEventLogStorage):
    def has_table(self, table_name: str) -> bool:
        """Tables found once stay (Dagster asks before every asset event, opening a new
        connection each time: ~13 connections per video of a batch run, measured)."""
        seen = self.__dict__.setdefault("_tables_seen", set())
        if table_name not in seen and super().has_table(table_name):
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
        statements = [self.prepare_insert_event(e) for e in events]
        with self.run_connection(events[0].run_id) as conn:
            for statement in statements:
                conn.execute(statement)
        with self.index_transaction() as conn:
            self._batch.conn = conn
            try:
                ids = []
                for statement in statements:
                    with db_result(conn, statement) as result:
                        ids.append(result.inserted_primary_key[0])
                asset = [(e, i) for e, i in zip(events, ids, strict=True) if _kind(e) == "asset"]
                if asset:
                    self._store_asset_event_tags(conn, [e for e, _ in asset], [i for _, i in asset])
                    # an asset's row holds its latest event: the batch's last one per asset is enough
                    latest = {e.dagster_event.asset_key: (e, i) for e, i in asset}
                    for event, event_id in latest.values():
                        self._store_asset_event(conn, event, event_id)
                for event, event_id in zip(events, ids, strict=True):
                    if _kind(event) == "check":
                        self.store_asset_check_event(event, event_id)
            finally:
                self._batch.conn = None


def _kind(event: EventLogEntry) -> str | None:
    """``asset`` / ``check`` for the events a batch may hold, None for any other."""
    if not event.is_dagster_event:
        return None
    if event.dagster_event_type in ASSET_EVENTS:
        return "asset"
    return "check" if event.dagster_event_type in ASSET_CHECK_EVENTS else None


class BatchingSqliteStorage(DagsterSqliteStorage):
    """The stock SQLite storage (runs, schedules, layout) with the batching event log."""

    def __init__(self, base_dir: str, inst_data=None) -> None:
        super().__init__(base_dir, inst_data)
        self._event_log_storage = BatchingSqliteEventLogStorage(_event_logs_directory(base_dir))

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> BatchingSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)
