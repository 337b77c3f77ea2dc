"""The Dagster CLI path users script against: `dagster asset materialize --partition KEY`."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_step_processes_do_not_import_model_libraries_until_a_model_is_built():
    """Every Dagster step runs in a fresh process that imports the definitions; timm and torchvision
    (seconds to import) load only where a model is built, not for a label name (the storage step,
    the demo), and Dagster's beta warning is not printed."""
    code = (
        "import sys, vid_assets.definitions\n"
        "from vid_assets.extractors.labels import label_names\n"
        "assert label_names('imagenet-1k')[0] == 'tench' and label_names('kinetics-400')[0] == 'abseiling'\n"
        "print(sorted(m for m in ('timm', 'torchvision') if m in sys.modules))\n"
        "from vid_assets.extractors import create_extractor\n"
        "create_extractor('timm:resnet18', pretrained=False)\n"
        "print(sorted(m for m in ('timm', 'torchvision') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["[]", "['timm', 'torchvision']"]
    assert "BetaWarning" not in proc.stderr


def test_local_executor_start_method(monkeypatch):
    from vid_assets.pipeline.definitions import build_definitions, local_executor

    assert build_definitions().executor.name == "multiprocess_forkserver"
    monkeypatch.setenv("VID_ASSETS_STEP_START", "spawn")
    assert build_definitions().executor.name == "multiprocess_spawn"
    monkeypatch.setenv("VID_ASSETS_STEP_START", "fork")
    with pytest.raises(ValueError, match="forkserver or spawn, not 'fork'"):
        local_executor()
