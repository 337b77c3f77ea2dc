"""Runs launched by a real ``dagster-daemon`` with the repository's ``dagster.yaml``: the warm run
launcher, cancelling, and a run worker killed with SIGKILL (its pool slot must come back)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from vid_assets.instance.launcher import WORKER_TAG
from vid_assets.samples import write_synthetic_video

ROOT = Path(__file__).resolve().parents[1]
DEFS = """
from vid_assets.defs.build import build_definitions
from vid_assets.defs.resources import ExtractorResource

defs = build_definitions(videos_dir={videos!r}, work_dir={work!r}, store_dir={store!r},
                         extractor=ExtractorResource(device="cpu"))
"""


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """A fresh Dagster home (the repository's dagster.yaml), three videos registered, the daemon running."""
    root = tmp_path_factory.mktemp("daemon")
    home, videos, watched = root / "home", root / "videos", root / "watched"
    for d in (home, videos, watched):
        d.mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    for i, seconds in enumerate((120.0, 120.0, 2.0, 0, 2.0)):  # two long enough to be interrupted mid-run
        if seconds:  # 10 fps: the model's 2-fps samples are as many, a third of the frames to encode
            write_synthetic_video(videos / f"v{i}.mp4", seconds=seconds, fps=10, size=(160, 120), seed=i)
        else:  # a corrupt file between two good ones
            (videos / f"v{i}.mp4").write_bytes(os.urandom(50_000))
    defs_file = root / "defs.py"
    defs_file.write_text(DEFS.format(videos=str(watched), work=str(root / "work"), store=str(root / "f.zarr")))
    (root / "workspace.yaml").write_text(f"load_from:\n  - python_file: {defs_file}\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    code = (
        "import runpy, dagster as dg\n"
        f"defs = runpy.run_path({str(defs_file)!r})['defs']\n"
        "from vid_assets.demo import register_videos\n"
        f"refs = register_videos(dg.DagsterInstance.get(), defs, sorted(__import__('pathlib').Path({str(videos)!r}).iterdir()))\n"
        "print(' '.join(r.key for r in refs))\n"
    )
    keys = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    daemon = subprocess.Popen(
        [sys.executable, "-m", "dagster._daemon", "run", "-w", str(root / "workspace.yaml")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(root / "daemon.log", "w"),  # noqa: SIM115 - open for the daemon's lifetime
        start_new_session=True,
    )
    old = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with dg.DagsterInstance.get() as instance:
            yield {"instance": instance, "keys": keys, "root": root, "env": env}
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)
        if old is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = old


def _launch(d, key: str, last: str | None = None) -> str:
    """``dagster job launch`` of one video (or the range ``key``..``last``) through the four
    assets, as the README tells a user to queue it."""
    tags = (
        {"dagster/partition": key}
        if last is None
        else {"dagster/asset_partition_range_start": key, "dagster/asset_partition_range_end": last}
    )
    cmd = [sys.executable, "-m", "dagster", "job", "launch", "-w", str(d["root"] / "workspace.yaml")]
    cmd += ["-j", "embed_videos", "--tags", json.dumps(tags)]
    out = subprocess.run(cmd, env=d["env"], capture_output=True, text=True, timeout=180, cwd=d["root"])
    assert out.returncode == 0, out.stderr[-3000:]
    assert "SupersessionWarning" not in out.stdout + out.stderr
    runs = d["instance"].get_run_records(dg.RunsFilter(tags=tags), limit=1)
    return runs[0].dagster_run.run_id


def _wait(instance, run_id: str, until, timeout: float = 240.0) -> dg.DagsterRun:
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = instance.get_run_by_id(run_id)
        if until(run):
            return run
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} stayed {instance.get_run_by_id(run_id).status}")


def _no_slot_held(instance, timeout: float = 60.0) -> None:
    """Wait until no run holds a pool slot (a run that ended without giving its slot back keeps it
    until run monitoring frees it, ``free_slots_after_run_end_seconds``)."""
    deadline = time.time() + timeout
    while held := instance.event_log_storage.get_concurrency_run_ids():
        assert time.time() < deadline, f"runs still hold pool slots: {held}"
        time.sleep(0.5)


def _embedding(instance, run_id: str) -> bool:
    return any("loaded extractor" in (e.user_message or "") for e in instance.all_logs(run_id))


def test_a_run_killed_with_sigkill_is_failed_and_its_pool_slot_freed(deployment):
    """Before run monitoring, the killed run held the ``gpu`` slot forever and later runs queued."""
    instance, keys = deployment["instance"], deployment["keys"]
    killed = _launch(deployment, keys[0])
    run = _wait(instance, killed, lambda r: r.status == dg.DagsterRunStatus.STARTED and _embedding(instance, killed))
    host, pid, _ = run.tags[WORKER_TAG].rsplit(":", 2)
    os.kill(int(pid), signal.SIGKILL)
    failed = _wait(instance, killed, lambda r: r.is_finished)
    assert failed.status == dg.DagsterRunStatus.FAILURE
    reasons = [e.dagster_event.message for e in instance.all_logs(killed) if e.dagster_event]
    assert any("exited with exit code -9" in (m or "") for m in reasons)
    after = _launch(deployment, keys[2])
    assert _wait(instance, after, lambda r: r.is_finished).status == dg.DagsterRunStatus.SUCCESS
    assert keys[2] in instance.get_materialized_partitions(dg.AssetKey("stored_features"))
    assert instance.event_log_storage.get_concurrency_run_ids() <= {after}  # nothing held by the dead run


def test_runs_start_warm_and_cancel(deployment):
    """A daemon-launched run is a fork of the warm process (its parent is not the code server) and
    starts its step within seconds; cancelling from another process stops it.

    Timed to the step's start, which is the launcher's doing: a spawned worker imports Dagster,
    torch and the definitions first (3.5+ s alone on the 2-core VM, 5-6 s to the model with timm).
    Not to the model's load: that is the model's own build, 0.5 s alone but 3-4 s (either runtime)
    while the other test worker computes, which a wall-clock bound here cannot tell apart. Best of
    up to three launches: in a full `make test` the other worker stalled a launch to 11 s once; a
    spawned worker would miss the bound every time."""
    instance, keys = deployment["instance"], deployment["keys"]
    starts: list[float] = []
    slow: list[str] = []
    while True:
        _no_slot_held(instance)  # else the step would wait for the `gpu` slot, not for the launcher
        run_id = _launch(deployment, keys[1])
        _wait(instance, run_id, lambda r, i=run_id: r.status == dg.DagsterRunStatus.STARTED and _embedding(instance, i))
        logs = [e for e in instance.all_logs(run_id) if e.dagster_event]
        stamps = {
            e.dagster_event.event_type_value: e.timestamp
            for e in reversed(logs)
            if e.dagster_event.event_type_value in ("PIPELINE_STARTING", "STEP_START")
        }
        starts.append(stamps["STEP_START"] - stamps["PIPELINE_STARTING"])  # fork, run worker, resources
        if starts[-1] < 3.0 or len(starts) == 3:
            break
        slow += [  # what the slow launch did meanwhile: the next stall's explanation
            f"{e.timestamp - stamps['PIPELINE_STARTING']:+.2f} s {e.dagster_event.event_type_value}: {e.message[:160]}"
            for e in logs
            if stamps["PIPELINE_STARTING"] <= e.timestamp <= stamps["STEP_START"]
        ]
        assert instance.run_launcher.terminate(run_id)
        _wait(instance, run_id, lambda r: r.is_finished, timeout=120)
    assert min(starts) < 3.0, (starts, slow)
    assert instance.run_launcher.terminate(run_id)
    assert _wait(instance, run_id, lambda r: r.is_finished, timeout=120).status == dg.DagsterRunStatus.CANCELED


def test_the_readmes_batch_command_stores_the_good_videos_around_a_bad_one(deployment):
    """``dagster job launch`` with range tags (the README's batch command): the corrupt video in
    the middle fails alone, and the run stores the two good ones around it. (The README's old
    ``dagster job execute`` is superseded in Dagster 1.13, and ``dg launch --partition-range``
    refuses a multi-run backfill policy.)"""
    instance, keys = deployment["instance"], deployment["keys"]
    run_id = _launch(deployment, keys[2], keys[4])
    assert _wait(instance, run_id, lambda r: r.is_finished).status == dg.DagsterRunStatus.FAILURE
    done = instance.get_materialized_partitions(dg.AssetKey("stored_features"))
    assert {keys[2], keys[4]} <= done and keys[3] not in done
    failure = next(
        e for e in instance.all_logs(run_id) if e.dagster_event and e.dagster_event.event_type_value == "STEP_FAILURE"
    )
    assert "1 of 3 videos failed to decode" in failure.dagster_event.message or "1 of 3 videos failed" in str(
        failure.dagster_event.event_specific_data
    )


def test_a_cancelled_batch_run_has_reported_the_videos_it_stored(deployment):
    """Cancelled while the engine is on a long video, a run has told Dagster about the short
    video it had already stored (before, a run reported its videos only after the last one)."""
    from vid_assets.demo import register_videos
    from vid_assets.store import FeatureStore

    instance, root = deployment["instance"], deployment["root"]
    videos = root / "videos_cancel"
    videos.mkdir()
    write_synthetic_video(videos / "a_short.mp4", seconds=2.0, fps=30, size=(160, 120), seed=11)
    write_synthetic_video(videos / "b_long.mp4", seconds=240.0, fps=10, size=(160, 120), seed=12)
    defs = __import__("runpy").run_path(str(root / "defs.py"))["defs"]
    short, long = (r.key for r in register_videos(instance, defs, sorted(videos.iterdir())))
    run_id = _launch(deployment, short, long)
    deadline = time.time() + 180
    while short not in FeatureStore(root / "f.zarr").list_videos():
        assert time.time() < deadline and not instance.get_run_by_id(run_id).is_finished
        time.sleep(0.2)
    assert instance.run_launcher.terminate(run_id)
    assert _wait(instance, run_id, lambda r: r.is_finished, timeout=120).status == dg.DagsterRunStatus.CANCELED
    assert long not in FeatureStore(root / "f.zarr").list_videos()  # cancelled mid-way
    for asset in ("decoded_frames", "clip_tensors", "clip_embeddings", "stored_features"):
        assert instance.get_materialized_partitions(dg.AssetKey(asset)) >= {short}
    checks = [
        e.dagster_event.asset_check_evaluation_data
        for e in instance.all_logs(run_id)
        if e.dagster_event and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    assert {c.partition for c in checks} == {short} and len(checks) == 4


def test_runs_queued_together_on_a_fresh_instance_wait_for_the_gpu_pool(tmp_path, monkeypatch):
    """Two runs of the ``gpu`` pool queued before the daemon's first dequeue pass (a backfill's
    first two batches on a fresh instance): Dagster's own pass launches the first and holds the
    second back. Before, both were launched, and the second spun a core waiting for the slot."""
    from dagster._core.op_concurrency_limits_counter import GlobalOpConcurrencyLimitsCounter
    from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
    from dagster._core.run_coordinator import SubmitRunContext
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    @dg.op(pool="gpu")
    def embed() -> None: ...

    @dg.job
    def embed_job() -> None:
        embed()

    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    location = InProcessCodeLocationOrigin(LoadableTargetOrigin(python_file=__file__), location_name="test")
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), "embed_job")
    with dg.DagsterInstance.get() as instance:
        for _ in range(2):
            run = instance.create_run_for_job(
                embed_job, status=dg.DagsterRunStatus.NOT_STARTED, remote_job_origin=origin
            )
            instance.run_coordinator.submit_run(SubmitRunContext(run, workspace=None))
        queued = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]), ascending=True)
        assert len(queued) == 2
        storage = instance.event_log_storage
        counter = GlobalOpConcurrencyLimitsCounter(  # as the daemon's pass builds it
            instance, queued, [], concurrency_keys=storage.get_concurrency_keys(), pool_limits=storage.get_pool_limits()
        )
        assert not counter.is_blocked(queued[0])
        counter.update_counters_with_launched_item(queued[0])
        assert counter.is_blocked(queued[1])


def test_the_daemon_passes_over_the_queue_twice_a_second(tmp_path, monkeypatch):
    """The repository's dagster.yaml sets ``dequeue_interval_seconds: 0.5``, which Dagster's own
    coordinator refuses (whole seconds). A queued run waited ~0.8-1.0 s for the pass at 1 s."""
    from dagster._core.errors import DagsterInvalidConfigError
    from dagster._daemon.controller import create_daemon_of_type
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        daemon = create_daemon_of_type(QueuedRunCoordinatorDaemon.daemon_type(), instance)
        assert daemon.interval_seconds == 0.5
    stock = (home / "dagster.yaml").read_text().replace("vid_assets.instance.launcher", "dagster._core.run_coordinator")
    (home / "dagster.yaml").write_text(stock.replace("WarmQueuedRunCoordinator", "QueuedRunCoordinator", 1))
    with pytest.raises(DagsterInvalidConfigError), dg.DagsterInstance.get() as instance:
        instance.run_coordinator  # noqa: B018


PROBE = """
import sys
import dagster as dg
sys.path.insert(0, {tests!r})
from forkserver_probe import exit_code_of_imports

instance = dg.DagsterInstance.get()
worker = instance.run_launcher._ctx.Process(target=exit_code_of_imports, args=({modules!r},))
worker.start()
worker.join()
print(worker.exitcode)
"""


def test_a_run_worker_starts_with_the_instances_storage_imported(tmp_path):
    """A run worker rebuilds the instance first thing: with SQLite, SQLAlchemy, alembic and Dagster's
    storage modules, ~0.3 s of every run's start on the 2-core VM before the forkserver imported them."""
    home = tmp_path / "home"
    home.mkdir()
    # the smallest preload of the launcher's own: the storage's modules must come from the instance
    yaml = (ROOT / "dagster.yaml").read_text() + "\n"
    yaml = yaml.replace("  class: WarmRunLauncher\n", "  class: WarmRunLauncher\n  config:\n    preload: [dagster]\n")
    (home / "dagster.yaml").write_text(yaml)
    modules = ["vid_assets.instance.event_log", "vid_assets.instance.sqlite", "sqlalchemy", "alembic"]
    code = PROBE.format(tests=str(Path(__file__).parent), modules=modules)
    env = {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split()[-1] == "0", out.stdout  # 3: one of them was not imported when the worker began
