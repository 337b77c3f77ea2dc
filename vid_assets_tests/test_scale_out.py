"""Scale-out on existing engines: PostgreSQL instance storage + the Celery executor with two workers.

Starts a real PostgreSQL (Debian's binaries) and Redis on loopback, two `dagster-celery` worker
processes, then materializes two partitions whose steps run on the workers. Skipped (with the
reason) where the servers or the `scale` extra are missing; `make test` installs redis-server.
"""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from vid_assets.devtools.net import free_port, wait_port
from vid_assets.devtools.postgres import local_postgres, pg_bin

REPO = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.skipif(pg_bin() is None, reason="PostgreSQL server binaries not installed"),
    pytest.mark.skipif(
        shutil.which("redis-server") is None, reason="redis-server not installed (apt-get install redis-server)"
    ),
]


@pytest.fixture(scope="module")
def servers():
    pytest.importorskip("dagster_celery")
    pytest.importorskip("dagster_postgres")
    redis_port = free_port()
    with local_postgres() as pg_url:
        redis = subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL
        )
        try:
            wait_port(redis_port)
            yield {"pg_url": pg_url, "redis": f"redis://127.0.0.1:{redis_port}"}
        finally:
            redis.terminate()


def test_backfill_on_celery_workers_with_postgres_storage(servers, tmp_path, media_dir):
    import dagster as dg

    from vid_assets.media import VideoRef

    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        f"storage:\n  postgres:\n    postgres_url: {servers['pg_url']}\ntelemetry:\n  enabled: false\n"
    )
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("clip_a.mp4", "clip_b.mp4"):  # two partitions: one step for each of the two workers
        shutil.copyfile(media_dir / name, videos / name)
    bindir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",  # dagster-celery runs `celery` from PATH
        "DAGSTER_HOME": str(home),
        "VID_ASSETS_DATA": str(tmp_path / "data"),
        "VID_ASSETS_VIDEOS": str(videos),
        "VID_ASSETS_DEVICE": "cpu",
        "VID_ASSETS_CELERY_BROKER": servers["redis"] + "/0",
        "VID_ASSETS_CELERY_BACKEND": servers["redis"] + "/1",
    }
    bindir = Path(sys.executable).parent
    subprocess.run(
        [bindir / "vid-assets", "register", str(videos)], env=env, check=True, capture_output=True, timeout=120
    )
    keys = sorted(VideoRef.from_path(p).key for p in videos.iterdir())
    cfg = tmp_path / "celery.yaml"
    cfg.write_text(f"execution:\n  config:\n    broker: {servers['redis']}/0\n    backend: {servers['redis']}/1\n")
    workers = [
        subprocess.Popen(
            [
                bindir / "dagster-celery",
                "worker",
                "start",
                "-A",
                "dagster_celery.app",
                "-y",
                str(cfg),
                "-n",
                f"w{i}@%h",
                "-i",
                "vid_assets.definitions_celery",
                "--",
                "--concurrency",
                "1",
            ],
            env=env,
            cwd=REPO,
            stdout=(tmp_path / f"w{i}.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for i in (1, 2)
    ]
    try:
        runs = [
            subprocess.Popen(
                [
                    bindir / "dagster",
                    "asset",
                    "materialize",
                    "-m",
                    "vid_assets.definitions_celery",
                    "--select",
                    "decoded_frames,clip_tensors,clip_embeddings,stored_features",
                    "--partition",
                    key,
                ],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for key in keys
        ]
        outs = [p.communicate(timeout=300)[0] for p in runs]
        for p, out in zip(runs, outs, strict=True):
            assert p.returncode == 0, out[-3000:]
    finally:
        for w in workers:
            os.killpg(w.pid, signal.SIGTERM)
        for w in workers:
            try:
                w.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(w.pid, signal.SIGKILL)

    from vid_assets.store import FeatureStore

    assert FeatureStore(tmp_path / "data" / "features.zarr").list_videos() == keys
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        runs = instance.get_runs()
        assert len(runs) == 2 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        messages = [e.message or "" for r in runs for e in instance.all_logs(r.run_id)]
        assert any("celery" in m.lower() for m in messages)
        worker_logs = "".join((tmp_path / f"w{i}.log").read_text() for i in (1, 2))
        # 2 partitions x one step (the four video assets stream in one step), run by the workers
        assert worker_logs.count("succeeded") >= 2
    finally:
        instance.dispose()
