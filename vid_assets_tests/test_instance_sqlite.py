"""The instance's SQLite storages on kept engines (``vid_assets/instance/sqlite.py``): what a
long-lived process (daemon, webserver) must still see."""

import multiprocessing
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.events import DagsterEvent, DagsterEventType, EngineEventData
from dagster._core.events.log import EventLogEntry

from vid_assets.instance import sqlite as kept

REPO = Path(__file__).resolve().parents[1]


def _home(home: Path) -> Path:
    """A ``DAGSTER_HOME`` with the repository's ``dagster.yaml`` (its storage based in ``home``)."""
    home.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    config["storage"]["custom"]["config"]["base_dir"] = str(home)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


def _instance(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(_home(home)))


def test_the_instance_uses_the_kept_storages(tmp_path):
    instance = _instance(tmp_path / "home")
    assert isinstance(instance.run_storage, kept.PooledSqliteRunStorage)
    assert isinstance(instance.schedule_storage, kept.PooledSqliteScheduleStorage)
    run = instance.create_run_for_job(dg.JobDefinition(graph_def=dg.GraphDefinition("g")))
    assert instance.get_run_by_id(run.run_id).run_id == run.run_id


def test_a_database_replaced_under_the_process_is_read_anew(tmp_path):
    """A pooled connection to a removed file would read (and write) the old file's inode."""
    db = tmp_path / "x.db"
    with sqlite3.connect(db) as c:
        c.execute("create table t (v text)")
        c.execute("insert into t values ('old')")
    conn_string = f"sqlite:///{db}"
    with kept.pooled_connection(conn_string) as conn:
        assert conn.exec_driver_sql("select v from t").scalar() == "old"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    with sqlite3.connect(db) as c:
        c.execute("create table t (v text)")
        c.execute("insert into t values ('new')")
    with kept.pooled_connection(conn_string) as conn:
        assert conn.exec_driver_sql("select v from t").scalar() == "new"


def _same_engine_in_child(conn_string: str, parent, queue) -> None:
    queue.put(kept.engine_for(conn_string) is parent)


def test_a_forked_process_builds_its_own_engine(tmp_path):
    """A fork must not use its parent's pooled connections (a run worker is a fork)."""
    conn_string = f"sqlite:///{tmp_path / 'y.db'}"
    parent = kept.engine_for(conn_string)
    assert kept.engine_for(conn_string) is parent  # kept within the process
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_same_engine_in_child, args=(conn_string, parent, queue))  # fork: not pickled
    child.start()
    assert queue.get(timeout=30) is False
    child.join(timeout=30)


def test_a_table_added_later_is_seen(tmp_path):
    """Only a found table is remembered: one added by a migration after a miss still shows."""
    storage = _instance(tmp_path / "home").event_log_storage
    assert not storage.has_table("added_later")
    index = Path(storage._base_dir) / "index.db"
    with sqlite3.connect(index) as c:
        c.execute("create table added_later (v text)")
    assert storage.has_table("added_later")


def _engine_event(run_id: str, message: str) -> EventLogEntry:
    event = DagsterEvent(
        event_type_value=DagsterEventType.ENGINE_EVENT.value,
        job_name="g",
        message=message,
        event_specific_data=EngineEventData(),
    )
    return EventLogEntry(
        error_info=None, level="INFO", user_message=message, run_id=run_id, timestamp=1.0, dagster_event=event
    )


def test_a_runs_log_watcher_sees_new_events(tmp_path):
    """The webserver streams a run's log by watching its database file: each write must still
    reach that file, not only its write-ahead log (a run's database is not pooled)."""
    instance = _instance(tmp_path / "home")
    run = instance.create_run_for_job(dg.JobDefinition(graph_def=dg.GraphDefinition("g")))
    storage, seen = instance.event_log_storage, []
    storage.store_event(_engine_event(run.run_id, "first"))  # the run's database exists before the watch
    cursor = storage.get_records_for_run(run.run_id).cursor
    storage.watch(run.run_id, cursor, lambda event, _cursor: seen.append(event.user_message))
    try:
        storage.store_event(_engine_event(run.run_id, "second"))
        deadline = time.monotonic() + 20
        while "second" not in seen and time.monotonic() < deadline:
            time.sleep(0.1)
        assert seen == ["second"]
    finally:
        storage.dispose()


def test_a_process_leaves_its_databases_whole_on_exit(tmp_path):
    """Pooled connections are closed at exit, so a copy of ``runs.db`` alone holds every run (the
    stock storage's close after each query folded the write-ahead log in the same way)."""
    home = _home(tmp_path / "home")  # (no instance in this process: its connections would stay open)
    code = "import dagster as dg; dg.DagsterInstance.get().create_run_for_job(dg.JobDefinition(graph_def=dg.GraphDefinition('g')))"
    subprocess.run([sys.executable, "-c", code], env={**os.environ, "DAGSTER_HOME": str(home)}, check=True)
    history = home / "history"
    assert (history / "runs.db").exists() and not (history / "runs.db-wal").exists()
    with sqlite3.connect(f"file:{history / 'runs.db'}?mode=ro&immutable=1", uri=True) as c:  # the file alone
        assert c.execute("select count(*) from runs").fetchone()[0] == 1


def _open_databases() -> int:
    names = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            names.append(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:  # the listing's own descriptor, closed by now
            continue
    return sum(name.endswith(".db") for name in names)


def test_many_instances_in_one_process_keep_few_files_open(tmp_path):
    """A notebook or a test session that opens instance after instance must not run out of file
    descriptors: only the most recently used databases keep pooled connections."""
    before = _open_databases()
    for i in range(kept.KEPT[True] + 4):  # three databases each: 48 pooled engines if none were let go
        instance = _instance(tmp_path / f"home{i}")
        instance.get_runs()
        instance.all_instigator_state()
        instance.event_log_storage.get_concurrency_run_ids()
    assert _open_databases() - before <= 2 * kept.KEPT[True]  # a connection or two per kept engine


MIGRATION_READS = """
import sys
from pathlib import Path
from alembic.script import ScriptDirectory
reads = []
init = ScriptDirectory.__init__
def counted(self, *args, **kwargs):
    reads.append(str(args[0] if args else kwargs.get("dir")))
    init(self, *args, **kwargs)
ScriptDirectory.__init__ = counted
import dagster as dg
instance = dg.DagsterInstance.from_config(sys.argv[1])
run = instance.create_run_for_job(dg.JobDefinition(graph_def=dg.GraphDefinition("g")))
instance.report_engine_event("a run's own database", run)  # creates and stamps it
assert [e.message for e in instance.all_logs(run.run_id)] == ["a run's own database"]
print(len([r for r in reads if "dagster" in r]))
"""


def test_dagster_migration_scripts_are_read_once_per_process(tmp_path):
    """A new instance and a run's new database check and stamp their schema revision 9 times;
    Dagster's scripts are read for the first only, and the instance opens again without a
    migration asked for (its databases stamped at Dagster's head)."""
    home = _home(tmp_path / "home")
    for _ in range(2):  # new, then existing
        proc = subprocess.run([sys.executable, "-c", MIGRATION_READS, str(home)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["1"]
    assert sorted(p.name for p in (home / "history" / "runs").glob("*.db"))
    other = tmp_path / "elsewhere"
    (other / "versions").mkdir(parents=True)
    (other / "script.py.mako").write_text("")
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(other))
    assert ScriptDirectory.from_config(config) is not ScriptDirectory.from_config(config)  # read as alembic does
