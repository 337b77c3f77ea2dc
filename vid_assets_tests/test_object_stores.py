"""Object storage for real: S3 (moto's server) and Google Cloud Storage (gcp-storage-emulator) on
loopback, read through s3fs and gcsfs as users configure them (endpoint and credentials from the
environment only). Each test runs on both; a backend whose packages are missing is skipped."""

from __future__ import annotations

import importlib.util
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

import vid_assets
from vid_assets.devtools.net import gcs_server, s3_server

BACKENDS = {  # scheme: (server, client package, server package, extra)
    "s3": (s3_server, "s3fs", "moto.server", "s3"),
    "gs": (gcs_server, "gcsfs", "gcp_storage_emulator", "gcs"),
}


@dataclass
class Bucket:
    scheme: str
    env: dict[str, str]

    def url(self, path: str) -> str:
        return f"{self.scheme}://{path}"

    @property
    def fs(self):
        import fsspec

        return fsspec.filesystem(self.scheme)

    @property
    def secret(self) -> str | None:  # the GCS emulator takes anonymous calls: no secret to leak
        return self.env.get("AWS_SECRET_ACCESS_KEY")


def _installed(pkg: str) -> bool:
    return importlib.util.find_spec(pkg.split(".")[0]) is not None


def _clear_clients() -> None:
    import fsspec

    for scheme, (_, client, _, _) in BACKENDS.items():
        if _installed(client):
            fsspec.get_filesystem_class(scheme).clear_instance_cache()


@pytest.fixture(params=list(BACKENDS))
def bucket(request, media_dir, monkeypatch):
    """Bucket ``videos`` with two clips under ``raw/`` and a non-video, on a real server."""
    server_of, client, server_pkg, extra = BACKENDS[request.param]
    for pkg, why in ((client, f"pip install '.[{extra}]'"), (server_pkg, "the dev extra")):
        if not _installed(pkg):
            pytest.skip(f"{pkg} is not installed ({why})")
    try:
        server = server_of()
        env = server.__enter__()
    except (RuntimeError, FileNotFoundError) as e:
        pytest.skip(f"no {request.param} server on loopback: {e}")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    _clear_clients()
    b = Bucket(request.param, env)
    fs = b.fs
    fs.mkdir("videos")
    for name in ("clip_a.mp4", "clip_b.mp4"):
        fs.put(str(media_dir / name), f"videos/raw/{name}")
    fs.pipe("videos/raw/notes.txt", b"not a video")
    yield b
    _clear_clients()
    server.__exit__(None, None, None)


def test_the_bucket_keeps_every_byte_of_an_object(bucket):
    """Objects come back as written, whatever their last byte: the GCS emulator dropped a final
    ``\\r`` from gcsfs's uploads (1 compressed chunk in 256, a rare Blosc error in the store tests)
    until ``devtools/gcs_emulator.py`` read them byte for byte."""
    rng = np.random.default_rng(0)
    fs = bucket.fs
    for i, tail in enumerate((b"\r", b"\n", b"\r\n", b"x")):
        body = rng.integers(0, 256, 3000, dtype=np.uint8).tobytes() + tail
        fs.pipe(f"videos/bytes/{i}", body)
        assert fs.cat(f"videos/bytes/{i}") == body, tail


def test_the_sensor_lists_and_range_hashes_a_bucket_and_extract_reads_from_it(bucket, tmp_path, media_dir):
    """A bucket prefix as a watched folder: the sensor finds the two videos (not the text file) and keys
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
        sensor = build_videos_sensor(bucket.url("videos/raw"))
        ctx = dg.build_sensor_context(instance=instance, resources={"workspace": defs.resources["workspace"]})
        tick = sensor(ctx)
        keys = [k for req in tick.dynamic_partitions_requests for k in req.partition_keys]
        local = {VideoRef.from_path(media_dir / n).key for n in ("clip_a.mp4", "clip_b.mp4")}
        assert set(keys) == local  # same bytes, same key, wherever they live
        instance.add_dynamic_partitions("videos", keys)
        job = defs.resolve_job_def("embed_videos")
        key = sorted(keys)[0]
        assert defs.resources["workspace"].catalog().get(key).uri.startswith(bucket.url("videos/raw/"))
        result = job.execute_in_process(partition_key=key, instance=instance)
        assert result.success
        logs = json.dumps([str(e.dagster_event or e.user_message) for e in instance.all_logs(result.run_id)])
    secret = bucket.secret or "no secret here"
    store = defs.resources["feature_store"].store()
    assert secret not in logs and secret not in json.dumps(dict(store.open_video(key).attrs), default=str)
    remote = vid_assets.extract([bucket.url("videos/raw/clip_a.mp4")], out=tmp_path / "remote", fps=2.0, device="cpu")
    here = vid_assets.extract([media_dir / "clip_a.mp4"], out=tmp_path / "local", fps=2.0, device="cpu")
    assert remote["done"] == here["done"] == 1
    (a,), (b,) = (vid_assets.store.FeatureStore(tmp_path / d).list_videos() for d in ("remote", "local"))
    fa = vid_assets.store.FeatureStore(tmp_path / "remote").read_video(a)
    fb = vid_assets.store.FeatureStore(tmp_path / "local").read_video(b)
    np.testing.assert_array_equal(fa.features, fb.features)
    assert fa.attrs["source"] == bucket.url("videos/raw/clip_a.mp4") and secret not in json.dumps(fa.attrs, default=str)
    shutil.rmtree(tmp_path / "remote")


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    """A 60-s 320x240 video, encoded once for both backends (~8 s on 2 cores)."""
    from vid_assets.samples import write_synthetic_video

    return write_synthetic_video(
        tmp_path_factory.mktemp("long") / "long.mp4", seconds=60, fps=30, size=(320, 240), seed=9
    )


def test_sampling_3_s_of_a_60_s_object_reads_well_under_half_of_it(bucket, long_video, tmp_path):
    """Range reads, not downloads: 3 s sampled from near the end of a 60-s video in the bucket
    fetch under half its bytes (counted by the reader's block cache), with the same frames as
    from disk; the training loader reads a view straight from the bucket too."""
    from vid_assets.loader import ClipDataset
    from vid_assets.media import SamplingPlan, iter_frames
    from vid_assets.media.opening import open_remote
    from vid_assets.store import FeatureStore
    from vid_assets.store.training import update_training_view
    from vid_assets_tests.helpers import write_fake_video

    fs = bucket.fs
    fs.put(str(long_video), "videos/long.mp4")
    plan = SamplingPlan.at_fps(1, start_s=50, end_s=53)
    f = open_remote(bucket.url("videos/long.mp4"))
    remote = [fr.pts_s for fr in iter_frames(f, plan)]
    assert remote == [fr.pts_s for fr in iter_frames(long_video, plan)] == pytest.approx([50.0, 51.0, 52.0])
    size = long_video.stat().st_size
    assert 0 < f.cache.total_requested_bytes < size / 2, (f.cache.total_requested_bytes, size)

    store = FeatureStore(tmp_path / "s.zarr")
    for i in range(3):
        write_fake_video(store, f"v{i}", 10, seed=i)
    update_training_view(store, tmp_path / "view.zarr", chunk_rows=4)
    fs.put(str(tmp_path / "view.zarr"), "videos/view.zarr", recursive=True)
    rows = sorted(int(i) for b in ClipDataset(bucket.url("videos/view.zarr"), batch_size=5) for i in b["index"])
    assert rows == list(range(30))


def test_the_feature_store_writes_and_reads_on_the_bucket(bucket, tmp_path, media_dir):
    """The store on the bucket: extract writes there, the features equal a local store's, a
    video written again is replaced (never two versions), a half-uploaded video (no commit
    marker) is invisible, and the training view and the seed-002 export read from it."""
    from vid_assets.store import RemoteFeatureStore, open_store
    from vid_assets.store.exports import export_npy
    from vid_assets.store.training import update_training_view

    url = bucket.url("videos/features.zarr")
    sources = [media_dir / "clip_a.mp4", media_dir / "clip_b.mp4"]
    remote_run = vid_assets.extract(sources, out=url, fps=2.0, device="cpu")
    local_run = vid_assets.extract(sources, out=tmp_path / "local.zarr", fps=2.0, device="cpu")
    assert remote_run["done"] == local_run["done"] == 2
    remote, local = open_store(url), open_store(tmp_path / "local.zarr")
    assert isinstance(remote, RemoteFeatureStore) and remote.list_videos() == local.list_videos()
    for vid in local.list_videos():
        np.testing.assert_array_equal(remote.read_video(vid).features, local.read_video(vid).features)
    fs = bucket.fs
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


def test_a_manifest_on_the_bucket_names_videos_relative_to_itself(bucket, tmp_path, media_dir):
    """A CSV manifest stored in the bucket: its relative uris resolve against its own prefix, its
    ids and captions reach the catalog, and the video keeps the content hash of its local copy."""
    from vid_assets.defs.resources import WorkspaceResource
    from vid_assets.defs.videos.sensors import build_videos_sensor
    from vid_assets.media import VideoRef

    bucket.fs.pipe("videos/balls.csv", b"uri,id,caption\nraw/clip_b.mp4,ball/02,a ball\n")
    bucket.fs.pipe("videos/empty/README.txt", b"no videos here")
    workspace = WorkspaceResource(work_dir=str(tmp_path / "work"))
    # the watched prefix holds no video: the one found comes from the manifest
    sensor = build_videos_sensor(bucket.url("videos/empty"), manifests=[bucket.url("videos/balls.csv")])
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        tick = sensor(dg.build_sensor_context(instance=instance, resources={"workspace": workspace}))
        (key,) = [k for req in tick.dynamic_partitions_requests for k in req.partition_keys]
    ref = workspace.catalog().get(key)
    local = VideoRef.from_path(media_dir / "clip_b.mp4")
    assert ref.uri == bucket.url("videos/raw/clip_b.mp4") and ref.caption == "a ball"
    assert key.startswith("ball_02-") and ref.content_hash == local.content_hash
