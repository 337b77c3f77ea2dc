"""The one-call path: ``vid_assets.extract`` and ``vid-assets extract``, on the engine, no Dagster."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

import vid_assets
from vid_assets.store import FeatureStore


class TQDMProgressBar:  # seed 001's class, as a user pastes it
    def __init__(self) -> None:
        self._prog_bar = None

    def update(self, current_frame):
        self._prog_bar.update(1)

    def reset(self, total_frames):
        if self._prog_bar is not None:
            self._prog_bar.close()
        from tqdm import tqdm

        self._prog_bar = tqdm(total=total_frames)


@pytest.fixture()
def folder(tmp_path, media_dir):
    d = tmp_path / "videos"
    d.mkdir()
    for name in ("clip_a.mp4", "clip_b.mp4", "not_a_video.mp4"):
        shutil.copyfile(media_dir / name, d / name)
    return d


def test_extract_writes_seed_002s_npy_layout_and_skips_what_is_done(folder, tmp_path):
    pytest.importorskip("tqdm")
    out, bar = tmp_path / "npy", TQDMProgressBar()
    summary = vid_assets.extract([folder], out=out, format="npy", fps=1.0, frames_per_clip=1, progress=bar)
    assert summary["done"] == 2 and summary["skipped"] == 0
    assert bar._prog_bar.n == 3 and bar._prog_bar.total == 3  # every video, the broken one too
    a = np.load(out / "clip_a.npy")
    assert a.shape == (3, 1280) and a.dtype == np.float32  # 3 s at 1 fps: one row per frame
    failed = json.loads((out / "failed_videos.json").read_text())
    assert [(f["source"].rsplit("/", 1)[-1], f["stage"]) for f in failed] == [("not_a_video.mp4", "decode")]
    again = vid_assets.extract([folder], out=out, format="npy", fps=1.0, frames_per_clip=1)
    assert (again["done"], again["skipped"]) == (0, 2)


def test_extract_command_fills_the_feature_store_with_a_progress_bar(folder, tmp_path):
    out = tmp_path / "features.zarr"
    cmd = [sys.executable, "-m", "vid_assets.cli", "extract", str(folder), "--out", str(out), "--device", "cpu"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stderr[-2000:]  # one video failed, and the exit status says so
    assert "2 done, 0 already there, 1 failed" in run.stdout and "videos" in run.stdout
    store = FeatureStore(out)
    assert len(store.list_videos()) == 2
    v = store.read_video(store.list_videos()[0])
    assert v.features.shape[1:] == (1, 1280) and v.attrs["sampling_plan"]["fps"] == 2.0
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert "0 done, 2 already there" in rerun.stdout
