"""The Dagster CLI path users script against: `dagster asset materialize --partition KEY`."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from vid_assets.media import VideoRef
from vid_assets.store import FeatureStore

REPO = Path(__file__).resolve().parents[1]


def test_dagster_asset_materialize_one_partition(tmp_path, media_dir):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copyfile(media_dir / "clip_b.mp4", videos / "clip_b.mp4")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "VID_ASSETS_DATA": str(tmp_path / "data"),
        "VID_ASSETS_VIDEOS": str(videos),
        "VID_ASSETS_DEVICE": "cpu",
    }
    bindir = Path(sys.executable).parent
    reg = subprocess.run(
        [bindir / "vid-assets", "register", str(videos)], env=env, capture_output=True, text=True, timeout=120
    )
    assert reg.returncode == 0, reg.stderr
    key = VideoRef.from_path(videos / "clip_b.mp4").key
    assert key in reg.stdout

    cmd = [
        bindir / "dagster",
        "asset",
        "materialize",
        "-m",
        "vid_assets.definitions",
        "--select",
        "*",
        "--partition",
        key,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "RUN_SUCCESS" in proc.stdout + proc.stderr

    store = FeatureStore(tmp_path / "data" / "features.zarr")
    assert store.list_videos() == [key]
    assert store.read_video(key).features.shape == (3, 1, 1280)
