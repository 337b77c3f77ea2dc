"""SLURM the way its users run it: an ``sbatch`` array of ``vid-assets extract --shard``, against a
real one-node cluster (munge + slurmctld + slurmd) the test starts on loopback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vid_assets.devtools import slurm

REPO = Path(__file__).resolve().parents[1]


def test_a_two_task_array_fills_one_store_and_status_shows_it_complete(tmp_path, media_dir):
    """deploy/slurm/extract_array.sh as submitted: `sbatch --array=0-1`, each task its half of four
    videos (no video written twice), all in the deployment's store and reported to its Dagster
    instance: `vid-assets status` says 4 of 4 stored, nothing missing."""
    reason = slurm.why_not()
    if reason:
        pytest.skip(reason)
    from vid_assets.samples import write_synthetic_video

    videos = tmp_path / "videos"
    for name in ("clip_a.mp4", "clip_b.mp4"):
        shutil.copyfile(media_dir / name, videos / name) if videos.exists() else (
            videos.mkdir(),
            shutil.copyfile(media_dir / name, videos / name),
        )
    for i in range(2):
        write_synthetic_video(videos / f"walk{i}.mp4", seconds=2.0, fps=12, seed=20 + i)
    (tmp_path / "home").mkdir()
    deployment = {
        "DAGSTER_HOME": str(tmp_path / "home"),
        "VID_ASSETS_DATA": str(tmp_path / "data"),
        "VID_ASSETS_DEVICE": "cpu",
        "HF_HUB_OFFLINE": "1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    try:
        cluster = slurm.slurm_cluster(tmp_path / "slurm")
        env = {**os.environ, **deployment, **cluster.__enter__()}
    except (subprocess.SubprocessError, RuntimeError, OSError) as e:
        pytest.skip(f"SLURM would not start here: {e}")
    try:
        submit = subprocess.run(
            [slurm.exe("sbatch"), "--parsable", "--array=0-1", f"--output={tmp_path}/task-%a.out", "--chdir", str(tmp_path),
             str(REPO / "deploy" / "slurm" / "extract_array.sh"), str(videos)],
            capture_output=True, text=True, env=env, check=True,
        )  # fmt: skip
        slurm.wait_for_job(submit.stdout.strip().split(";")[0], env)
    finally:
        cluster.__exit__(None, None, None)
    for i in range(2):
        text = (tmp_path / f"task-{i}.out").read_text(errors="replace")
        assert "2 done, 0 already there, 0 failed" in text, text[-3000:]
    status = subprocess.run(
        [sys.executable, "-m", "vid_assets.cli", "status", "--json"],
        capture_output=True, text=True, env={**os.environ, **deployment}, check=True,
    )  # fmt: skip
    report = json.loads(status.stdout)
    stored = report["assets"]["stored_features"]
    assert report["videos"] == 4 and (stored["done"], stored["missing"], stored["failed"]) == (4, 0, 0)
    from vid_assets.store import FeatureStore

    assert len(FeatureStore(tmp_path / "data" / "features.zarr").list_videos()) == 4
