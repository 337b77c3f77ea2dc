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
    # frames sampled over all videos (3 s and 2.5 s at 1 fps: 3 + 3; the broken one has none)
    assert bar._prog_bar.n == 6 and bar._prog_bar.total == 6 and summary["frames"] == 6
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


class StreamingProgressBar:  # seed 001's web class, as a user pastes it (the URL made real)
    url = "http://your/url"

    def update(self, current_frame):
        import requests

        r = requests.post(self.url, json={"current_frame": current_frame})  # noqa: F841 (verbatim)

    def reset(self, total_frames):
        import requests

        r = requests.post(self.url, json={"total_frames": total_frames})  # noqa: F841 (verbatim)


class DemoStreamProcessor:
    """A stream processor of the kind seed 001 passes (``YouTubeStreamProcessor``): it resolves
    ``demo://<name>`` page URLs to the media's own location."""

    name = "demo"

    def __init__(self, folder):
        self.folder = folder

    def matches(self, url: str) -> bool:
        return url.startswith("demo://")

    def resolve(self, url: str) -> str:
        return str(self.folder / f"{url.removeprefix('demo://')}.mp4")


def test_seed_001_example_runs_almost_verbatim(media_dir, tmp_path):
    """Seed 001's app: a CLIP extractor with batch 256, its stream processor, every 30th frame,
    256 frames per batch, its progress classes pasted as they are, and two URLs (the same one
    twice). The bars count exactly the frames sampled, the web bar's server on loopback gets its
    POSTs, and the store holds the video's CLIP features, once."""
    pytest.importorskip("tqdm")
    pytest.importorskip("requests")
    from vid_assets.devtools.net import JsonSink
    from vid_assets_tests.helpers import save_tiny_clip

    save_tiny_clip(tmp_path / "clip")  # an OpenAI-CLIP-architecture checkpoint (random, tiny)
    one_min = "demo://clip_a"
    with JsonSink() as sink:
        web = StreamingProgressBar()
        web.url = sink.url
        for out, prog_bar in ((tmp_path / "features.zarr", TQDMProgressBar()), (tmp_path / "web.zarr", web)):
            summary = vid_assets.extract(
                [one_min, one_min],
                out=out,
                extractor=f"transformers:{tmp_path / 'clip'}",  # OpenAIClip(batch_size=256)
                batch_size=256,
                stream_processor=DemoStreamProcessor(media_dir),
                mode="every_n",
                every_n_frames=30,  # process_every_n_frame=30
                progress=prog_bar,
                device="cpu",
            )
            if isinstance(prog_bar, TQDMProgressBar):
                assert summary["done"] == 1 and summary["skipped"] == 1  # the same video twice: once
                # clip_a: 72 frames at 24 fps, every 30th kept: frames 0, 30, 60
                assert (prog_bar._prog_bar.n, prog_bar._prog_bar.total) == (3, 3)
        # the web bar's server heard the total, then each frame (the seed's class posts every update)
        assert sink.bodies == [{"total_frames": 3}, *({"current_frame": i} for i in (1, 2, 3))]
    store = FeatureStore(tmp_path / "features.zarr")
    (key,) = store.list_videos()
    v = store.read_video(key)
    assert v.attrs["source"] == one_min and v.features.shape == (2, 1, 24)  # 3 frames in 2-frame clips
    np.testing.assert_array_equal(v.frame_times.reshape(-1)[:3], [0.0, 30 / 24, 60 / 24])


def test_a_web_progress_hook_posts_json_at_a_bounded_rate(media_dir, tmp_path):
    """``WebProgress(url)``: the total first, then progress at most once per interval, and always
    the last frame; a server that went away does not stop the work."""
    from vid_assets.devtools.net import JsonSink
    from vid_assets.progress import WebProgress

    with JsonSink() as sink:
        hook = WebProgress(sink.url, interval_s=3600)
        summary = vid_assets.extract(
            [media_dir / "clip_a.mp4", media_dir / "clip_b.mp4"], out=tmp_path / "s.zarr", fps=4.0, progress=hook
        )
        assert sink.bodies[0] == {"total_frames": summary["frames"]} and summary["frames"] == 22  # 12 + 10
        assert sink.bodies[1:] == [{"current_frame": 22, "total_frames": 22}]  # the interval held the rest
    gone = WebProgress(sink.url)  # the server is down now
    again = vid_assets.extract([media_dir / "clip_a.mp4"], out=tmp_path / "t.zarr", fps=4.0, progress=gone)
    assert again["done"] == 1
