"""Dagster's SQLite storages, each database with one engine per process.

Dagster's SQLite storages build a new SQLAlchemy engine for every query, connect, and close the
connection after it, and they look the schema up again (``PRAGMA table_info``) before many
queries. Every process of an instance pays that on every query: the daemon's run queue runs two
queries a second while runs are in flight (3.0 ms a pair here, 0.39 ms with an engine kept and
its connections pooled; benchmarks/RESULTS.md, session 22), and those cycles are taken from the
model on a small host. So here:

- ``runs.db``, ``schedules.db`` and the event log's index keep one engine per process, with
  SQLAlchemy's connection pool: no engine to build, statements compiled once, no connect and
  close (the last close of a WAL database also checkpoints it).
- A run's own event database keeps an engine too, but without a pool: its connection still
  closes after each write, as Dagster's, because that close writes the events into the database
  file, which is what the webserver's file watcher waits on to stream a run's logs.
- A schema answer that found a table or column is kept (tables and columns are only ever added).
- Dagster's migration scripts are read once per process (:func:`_migrations_read_once`).

A pooled connection is checked against the file it opened at each checkout: a database deleted
or replaced under a long-lived process (a wiped ``DAGSTER_HOME``) gets a fresh connection rather
than the old file's. Engines are per process (a forked run worker builds its own), so
connections never cross a fork. A process closes its pooled connections at exit, which folds the
write-ahead log into the database file, as the stock storage's closes did.
"""

from __future__ import annotations

import atexit
import functools
import os
import threading
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any

from alembic.config import Config
from alembic.script import ScriptDirectory
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sql import ALEMBIC_SCRIPTS_LOCATION
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import NullPool

# engines a process keeps, the least recently used dropped first: pooled ones hold open files
# (3 per instance), pool-less ones (run databases) only memory
KEPT = {True: 12, False: 32}

_lock = threading.Lock()
_kept: dict[bool, OrderedDict[tuple[int, str], Engine]] = {True: OrderedDict(), False: OrderedDict()}


def engine_for(conn_string: str, pooled: bool = True) -> Engine:
    """This process's engine for one SQLite database (keyed by pid: a fork builds its own)."""
    key, kept = (os.getpid(), conn_string), _kept[pooled]
    with _lock:
        engine = kept.pop(key, None)
        if engine is None:
            engine = _pooled_engine(conn_string) if pooled else _engine(conn_string, poolclass=NullPool)
        kept[key] = engine  # the most recent last
        while len(kept) > KEPT[pooled]:
            (pid, _), dropped = kept.popitem(last=False)
            # a parent's connections, inherited by a fork, are left alone (SQLAlchemy's advice)
            dropped.dispose(close=pid == os.getpid())
        return engine


@atexit.register
def _close_pooled() -> None:
    """Close this process's pooled connections on the way out: the last close of a WAL database
    folds its log into the file, as Dagster's closes after each query did."""
    with _lock:
        for (pid, _), engine in list(_kept[True].items()):
            if pid == os.getpid():
                engine.dispose()


def _engine(conn_string: str, **kwargs: Any) -> Engine:
    return create_engine(conn_string, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}, **kwargs)


def _pooled_engine(conn_string: str) -> Engine:
    engine = _engine(conn_string)
    path = engine.url.database

    @event.listens_for(engine, "connect")
    def _remember_file(dbapi_conn, record) -> None:
        record.info["file"] = _file_id(path)

    @event.listens_for(engine, "checkout")
    def _same_file(dbapi_conn, record, proxy) -> None:
        if record.info.get("file") != _file_id(path):
            raise DisconnectionError(f"{path} was replaced or removed since this connection opened")

    return engine


def _file_id(path: str | None) -> tuple[int, int] | None:
    try:
        st = os.stat(path) if path else None
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino) if st else None


@contextmanager
def pooled_connection(conn_string: str):
    """A connection in a transaction, as Dagster's SQLite ``connect`` yields one."""
    with engine_for(conn_string).connect() as conn, conn.begin():
        yield conn


def keep_true(cls: type, *names: str) -> type:
    """Wrap ``cls``'s schema probes ``names`` so that a True answer is kept by the instance."""

    def wrap(probe):
        @functools.wraps(probe)
        def kept(self, *args):
            found = self.__dict__.setdefault("_schema_found", set())
            if (probe.__name__, args) not in found and probe(self, *args):
                found.add((probe.__name__, args))
            return (probe.__name__, args) in found

        return kept

    for name in names:
        setattr(cls, name, wrap(getattr(cls, name)))
    return cls


class PooledSqliteRunStorage(SqliteRunStorage):
    def connect(self):
        return pooled_connection(self._conn_string)


class PooledSqliteScheduleStorage(SqliteScheduleStorage):
    def connect(self):
        return pooled_connection(self._conn_string)


keep_true(
    PooledSqliteRunStorage,
    "has_run_stats_index_cols",
    "has_bulk_actions_selector_cols",
    "has_backfill_id_column",
    "has_bulk_action_job_name_column",
    "has_backfill_tags_table",
    "has_built_index",
)
keep_true(PooledSqliteScheduleStorage, "has_instigators_table", "has_secondary_index_table", "has_built_index")


def _migrations_read_once() -> None:
    """Dagster reads its ~150 migration scripts again for every revision check and stamp: 7 reads
    for a new instance, 3 for an existing one, 2 for each run's own new database, ~35 ms each on
    the 2-core VM. They are the installed package's files and do not change while a process runs,
    so the first read of Dagster's location serves the process (any other location is read as
    alembic reads it)."""
    read = ScriptDirectory.from_config.__func__
    first: list[ScriptDirectory] = []  # Dagster's, once read
    lock = threading.Lock()

    def from_config(cls, config: Config) -> ScriptDirectory:
        if config.get_main_option("script_location") != ALEMBIC_SCRIPTS_LOCATION or cls is not ScriptDirectory:
            return read(cls, config)
        with lock:
            if not first:
                first.append(read(cls, config))
            return first[0]

    ScriptDirectory.from_config = classmethod(from_config)


_migrations_read_once()
