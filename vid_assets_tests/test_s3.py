"""Object storage for real: a moto S3 server on loopback, read through s3fs as users configure it
(credentials and endpoint from the environment only)."""

from __future__ import annotations

import json
import shutil

import dagster as dg
import numpy as np
import pytest

pytest.importorskip("s3fs", reason="the s3 extra is not installed (pip install '.[s3]')")
pytest.importorskip("moto.server", reason="moto[server] is not installed (the dev extra)")

import vid_assets  # noqa: E402
from vid_assets.devtools.net import s3_server  # noqa: E402


@pytest.fixture()
def bucket(media_dir, monkeypatch):
    """Bucket ``videos`` with two clips under ``raw/`` and a non-video, on a real S3 server."""
    import fsspec
    import s3fs

    try:
        server = s3_server()
        env = server.__enter__()
    except (RuntimeError, FileNotFoundError) as e:
        pytest.skip(f"no S3 server on loopback: {e}")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    s3fs.S3FileSystem.clear_instance_cache()
    fs = fsspec.filesystem("s3")
    fs.mkdir("videos")
    for name in ("clip_a.mp4", "clip_b.mp4"):
        fs.put(str(media_dir / name), f"videos/raw/{name}")
    fs.pipe("videos/raw/notes.txt", b"not a video")
    yield env
    s3fs.S3FileSystem.clear_instance_cache()
    server.__exit__(None, None, None)


def test_the_sensor_lists_and_range_hashes_a_bucket_and_extract_reads_from_it(bucket, tmp_path, media_dir):
    """`s3://` as a watched prefix: the sensor finds the two videos (not the text file) and keys
    them by the same content hash as the local copies (two range reads, not a download); the
    one-call extract reads the same features from the bucket as from disk; the secret key appears
    in no log line, event, metadata or stored attribute."""
    from vid_assets.defs.build import build_definitions
    from vid_assets.defs.resources import ExtractorResource
    from vid_assets.defs.videos.sensors import build_videos_sensor
    from vid_assets.media import VideoRef

    defs = build_definitions(
        work_dir=str(tmp_path / "work"), store_dir=str(tmp_path / "f.zarr"), extractor=ExtractorResource(device="cpu")
    )
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        sensor = build_videos_sensor("s3://videos/raw")
        ctx = dg.build_sensor_context(instance=instance, resources={"workspace": defs.resources["workspace"]})
        tick = sensor(ctx)
        keys = [k for req in tick.dynamic_partitions_requests for k in req.partition_keys]
        local = {VideoRef.from_path(media_dir / n).key for n in ("clip_a.mp4", "clip_b.mp4")}
        assert set(keys) == local  # same bytes, same key, wherever they live
        instance.add_dynamic_partitions("videos", keys)
        job = defs.resolve_job_def("embed_videos")
        key = sorted(keys)[0]
        assert defs.resources["workspace"].catalog().get(key).uri.startswith("s3://videos/raw/")
        result = job.execute_in_process(partition_key=key, instance=instance)
        assert result.success
        logs = json.dumps([str(e.dagster_event or e.user_message) for e in instance.all_logs(result.run_id)])
    secret = bucket["AWS_SECRET_ACCESS_KEY"]
    store = defs.resources["feature_store"].store()
    assert secret not in logs and secret not in json.dumps(dict(store.open_video(key).attrs), default=str)
    remote = vid_assets.extract(["s3://videos/raw/clip_a.mp4"], out=tmp_path / "remote", fps=2.0, device="cpu")
    here = vid_assets.extract([media_dir / "clip_a.mp4"], out=tmp_path / "local", fps=2.0, device="cpu")
    assert remote["done"] == here["done"] == 1
    (a,), (b,) = (vid_assets.store.FeatureStore(tmp_path / d).list_videos() for d in ("remote", "local"))
    fa = vid_assets.store.FeatureStore(tmp_path / "remote").read_video(a)
    fb = vid_assets.store.FeatureStore(tmp_path / "local").read_video(b)
    np.testing.assert_array_equal(fa.features, fb.features)
    assert fa.attrs["source"] == "s3://videos/raw/clip_a.mp4" and secret not in json.dumps(fa.attrs, default=str)
    shutil.rmtree(tmp_path / "remote")


def test_sampling_3_s_of_a_60_s_object_reads_well_under_half_of_it(bucket, tmp_path):
    """Range reads, not downloads: 3 s sampled from near the end of a 60-s video in the bucket
    fetch under half its bytes (counted by the reader's block cache), with the same frames as
    from disk; the training loader reads a view straight from the bucket too."""
    import fsspec

    from vid_assets.loader import ClipDataset
    from vid_assets.media import SamplingPlan, iter_frames
    from vid_assets.media.opening import open_remote
    from vid_assets.samples import write_synthetic_video
    from vid_assets.store import FeatureStore
    from vid_assets.store.training import update_training_view
    from vid_assets_tests.helpers import write_fake_video

    src = write_synthetic_video(tmp_path / "long.mp4", seconds=60, fps=30, size=(320, 240), seed=9)
    fs = fsspec.filesystem("s3")
    fs.put(str(src), "videos/long.mp4")
    plan = SamplingPlan.at_fps(1, start_s=50, end_s=53)
    f = open_remote("s3://videos/long.mp4")
    remote = [fr.pts_s for fr in iter_frames(f, plan)]
    assert remote == [fr.pts_s for fr in iter_frames(src, plan)] == pytest.approx([50.0, 51.0, 52.0])
    size = src.stat().st_size
    assert 0 < f.cache.total_requested_bytes < size / 2, (f.cache.total_requested_bytes, size)

    store = FeatureStore(tmp_path / "s.zarr")
    for i in range(3):
        write_fake_video(store, f"v{i}", 10, seed=i)
    update_training_view(store, tmp_path / "view.zarr", chunk_rows=4)
    fs.put(str(tmp_path / "view.zarr"), "videos/view.zarr", recursive=True)
    rows = sorted(int(i) for b in ClipDataset("s3://videos/view.zarr", batch_size=5) for i in b["index"])
    assert rows == list(range(30))


def test_the_feature_store_writes_and_reads_on_s3(bucket, tmp_path, media_dir):
    """The store on the bucket: extract writes there, the features equal a local store's, a
    video written again is replaced (never two versions), a half-uploaded video (no commit
    marker) is invisible, and the training view and the seed-002 export read from it."""
    import fsspec

    from vid_assets.store import RemoteFeatureStore, open_store
    from vid_assets.store.exports import export_npy
    from vid_assets.store.training import update_training_view

    url = "s3://videos/features.zarr"
    sources = [media_dir / "clip_a.mp4", media_dir / "clip_b.mp4"]
    remote_run = vid_assets.extract(sources, out=url, fps=2.0, device="cpu")
    local_run = vid_assets.extract(sources, out=tmp_path / "local.zarr", fps=2.0, device="cpu")
    assert remote_run["done"] == local_run["done"] == 2
    remote, local = open_store(url), open_store(tmp_path / "local.zarr")
    assert isinstance(remote, RemoteFeatureStore) and remote.list_videos() == local.list_videos()
    for vid in local.list_videos():
        np.testing.assert_array_equal(remote.read_video(vid).features, local.read_video(vid).features)
    fs = fsspec.filesystem("s3")
    assert fs.exists("videos/features.zarr/failed_videos.json")
    again = vid_assets.extract(sources, out=url, fps=2.0, device="cpu")
    assert again["skipped"] == 2  # done is done, on the bucket too
    vid = remote.list_videos()[0]
    v = remote.read_video(vid)
    remote.write_video(
        vid,
        features=v.features[:1].astype(np.float32),
        timestamps=v.timestamps[:1],
        frame_times=v.frame_times[:1],
        attrs={k: v.attrs[k] for k in ("source", "content_hash", "extractor")},
    )
    assert remote.read_video(vid).num_clips == 1  # replaced, not mixed
    fs.pipe("videos/features.zarr/videos/half-uploaded/features/zarr.json", b"{}")  # no group marker
    assert "half-uploaded" not in remote.list_videos()
    view = update_training_view(remote, tmp_path / "view.zarr")
    assert view["num_videos"] == 2
    done = export_npy(remote, tmp_path / "npy")
    assert len(done.written) == 2 and export_npy(remote, tmp_path / "npy").unchanged == 2
