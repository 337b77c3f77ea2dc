"""``vid-assets status`` throughput and ETA, from real runs in a real instance."""

from __future__ import annotations

import shutil
import time

import dagster as dg
import pytest

from vid_assets.defs.build import build_definitions
from vid_assets.defs.resources import ExtractorResource
from vid_assets.defs.videos.status import busy_seconds, progress
from vid_assets.demo import register_videos


def test_busy_seconds_is_the_union_of_run_intervals():
    assert busy_seconds([]) == 0
    assert busy_seconds([(0, 2), (1, 3), (10, 11)]) == 4  # overlapping runs count once, the gap not at all
    assert busy_seconds([(5, 6), (0, 10)]) == 10


def test_videos_per_hour_counts_busy_time_and_eta_only_while_runs_are_in_flight(tmp_path, media_dir):
    """Before: the rate was divided by the whole span since the oldest run started, idle time
    included, and an ETA was shown with nothing queued to finish the work."""
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("clip_a.mp4", "clip_b.mp4"):
        shutil.copyfile(media_dir / name, videos / name)
    defs = build_definitions(
        work_dir=str(tmp_path / "work"), store_dir=str(tmp_path / "f.zarr"), extractor=ExtractorResource(device="cpu")
    )
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        refs = register_videos(instance, defs, sorted(videos.iterdir()))
        job = defs.resolve_job_def("embed_videos")
        first = job.execute_in_process(partition_key=refs[0].key, instance=instance)
        time.sleep(5)  # nobody works
        second = job.execute_in_process(partition_key=refs[1].key, instance=instance)
        runs = instance.get_run_records(dg.RunsFilter(run_ids=[first.run_id, second.run_id]))
        busy = sum(r.end_time - r.start_time for r in runs)
        catalog = defs.resources["workspace"].catalog()
        report = progress(instance, catalog, defs=defs)["assets"]["stored_features"]
        assert report["videos_per_hour"] == pytest.approx(2 * 3600 / busy, rel=0.02)
        assert report["eta_s"] == 0  # nothing missing

        shutil.copyfile(media_dir / "clip_a.mp4", videos / "third.mp4")
        with (videos / "third.mp4").open("ab") as f:
            f.write(b"\0" * 16)  # other bytes, another video
        register_videos(instance, defs, [videos / "third.mp4"])
        idle = progress(instance, catalog, defs=defs)
        assert idle["assets"]["stored_features"]["missing"] == 1
        assert idle["assets"]["stored_features"]["eta_s"] is None and not idle["runs_in_flight"]

        instance.create_run_for_job(
            job_def=job, tags={"dagster/partition": refs[0].key}, status=dg.DagsterRunStatus.STARTED
        )
        queued = progress(instance, catalog, defs=defs)
        assert queued["runs_in_flight"]
        todo = queued["assets"]["stored_features"]["missing"] + queued["assets"]["stored_features"]["in_progress"]
        assert queued["assets"]["stored_features"]["eta_s"] == pytest.approx(todo * busy / 2, abs=1)


def test_a_model_error_is_recorded_per_video_with_its_stage(tmp_path, media_dir):
    """Before: only decode failures had a per-video reason; an out-of-memory error in the model
    left none in ``vid-assets status`` or the export's failure file."""
    import av
    import numpy as np

    from vid_assets.store.exports import failed_report

    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copyfile(media_dir / "clip_a.mp4", videos / "clip_a.mp4")
    with av.open(str(videos / "white.mp4"), "w") as out:
        s = out.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for _ in range(10):
            for p in s.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), 255, np.uint8), format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    defs = build_definitions(
        work_dir=str(tmp_path / "work"),
        store_dir=str(tmp_path / "f.zarr"),
        extractor=ExtractorResource(name="vid_assets_tests.failing_models:oom_on_bright", device="cpu"),
    )
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        good, white = register_videos(instance, defs, [videos / "clip_a.mp4", videos / "white.mp4"])
        job = defs.resolve_job_def("embed_videos")
        assert job.execute_in_process(partition_key=good.key, instance=instance).success
        assert not job.execute_in_process(partition_key=white.key, instance=instance, raise_on_error=False).success
        catalog = defs.resources["workspace"].catalog()
        report = progress(instance, catalog, defs=defs)
        (failure,) = report["failures"]
        assert (failure["id"], failure["stage"]) == (white.key, "embed")
        assert "CUDA out of memory" in failure["message"]
        assert report["assets"]["stored_features"]["failed"] == 1 and report["assets"]["stored_features"]["done"] == 1
        (exported,) = failed_report(catalog, tmp_path / "failed_videos.json")
        assert exported["stage"] == "embed" and exported["source"].endswith("white.mp4")
