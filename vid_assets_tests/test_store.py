import numpy as np
import pytest
import zarr

from vid_assets.store import ArtifactStore, FeatureStore


def _write(store, vid, n=5, seed=0, **kw):
    rng = np.random.default_rng(seed)
    return store.write_video(
        vid,
        features=rng.standard_normal((n, 1, 16)).astype(np.float32),
        timestamps=np.stack([np.arange(n), np.arange(n) + 1.0], axis=1),
        frame_times=np.arange(n, dtype=np.float64)[:, None],
        attrs={"source": "x.mp4", "extractor": "test@1"},
        **kw,
    )


def test_roundtrip_layout_and_attrs(tmp_path):
    store = FeatureStore(tmp_path / "s.zarr")
    _write(store, "v1")
    v = store.read_video("v1")
    assert v.features.dtype == np.float16 and v.features.shape == (5, 1, 16)
    assert v.attrs["extractor"] == "test@1" and v.attrs["num_clips"] == 5
    assert "torch" in v.attrs["versions"]
    # readable with plain zarr v3, and compressed with blosc zstd
    arr = zarr.open_group(tmp_path / "s.zarr", mode="r")["videos/v1/features"]
    assert arr.metadata.zarr_format == 3
    assert "zstd" in str(arr.compressors)
    assert store.list_videos() == ["v1"]


def test_rewrite_replaces_cleanly(tmp_path):
    store = FeatureStore(tmp_path / "s.zarr")
    _write(store, "v1", top_labels=np.zeros((5, 1, 3)), top_scores=np.ones((5, 1, 3)))
    _write(store, "v1", n=3, seed=1)  # second write has no label arrays
    v = store.read_video("v1")
    assert v.num_clips == 3 and v.top_labels is None  # no stale arrays survive
    assert store.list_videos() == ["v1"]
    assert not list((tmp_path / "s.zarr" / ".trash").glob("*"))


def test_failed_write_leaves_nothing_visible(tmp_path):
    store = FeatureStore(tmp_path / "s.zarr")
    _write(store, "good")
    with pytest.raises(ValueError):
        store.write_video(
            "bad",
            features=np.zeros((4, 1, 8)),
            timestamps=np.zeros((3, 2)),  # wrong length
            frame_times=np.zeros((4, 1)),
            attrs={},
        )
    artifacts = ArtifactStore(tmp_path / "work")
    with pytest.raises(RuntimeError), artifacts.writer("frames", "half") as g:
        g.create_array("images", data=np.zeros((3, 2), np.uint8))
        raise RuntimeError("crash mid-write")
    assert store.list_videos() == ["good"]
    assert not artifacts.exists("frames", "half")
    assert not list((tmp_path / "work" / "frames" / ".staging").iterdir())


def test_no_nan_or_inf_reaches_stored_metadata(tmp_path):
    """Before: an image renamed .mp4 was stored with ``duration_s: NaN`` in zarr.json."""
    store = FeatureStore(tmp_path / "s.zarr")
    rng = np.random.default_rng(0)
    for bad in ({"duration_s": float("nan")}, {"plan": {"fps": float("inf")}}, {"sizes": [1.0, float("-inf")]}):
        with pytest.raises(ValueError, match="non-finite value in the video's metadata"):
            store.write_video(
                "v1",
                features=rng.standard_normal((2, 1, 4)).astype(np.float32),
                timestamps=np.array([[0.0, 1.0], [1.0, 2.0]]),
                frame_times=np.array([[0.0], [1.0]]),
                attrs={"source": "x.mp4", **bad},
            )
    assert store.list_videos() == []


def test_a_still_image_named_like_a_video_fails_clearly(tmp_path):
    import av

    from vid_assets.media import VideoDecodeError, probe

    path = tmp_path / "photo.mp4"
    with av.open(str(path), "w", format="image2") as c:
        s = c.add_stream("mjpeg")
        s.width, s.height, s.pix_fmt = 64, 48, "yuvj420p"
        for p in [*s.encode(av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")), *s.encode()]:
            c.mux(p)
    with pytest.raises(VideoDecodeError, match=r"a still image \(jpeg_pipe\), not a video"):
        probe(path)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_checks_on_what_was_written_equal_the_checks_read_back(tmp_path, dtype):
    """A run checks the arrays it handed to the store instead of reading them back: the outcomes
    must be the read-back ones, including a value that only overflows in the stored dtype."""
    store = FeatureStore(tmp_path / "s.zarr", dtype=dtype)
    n = 4
    ts = np.stack([np.arange(n), np.arange(n) + 1.0], axis=1)
    attrs = {"source": "x.mp4", "extractor": "test@1", "extractor_config": {"dim": 16}}
    good = np.random.default_rng(0).standard_normal((n, 1, 16)).astype(np.float32)
    huge = good.copy()
    huge[1, 0, 3] = 1e5 if dtype == "float16" else np.finfo(np.float32).max  # finite until stored
    unordered = ts[::-1].copy()
    for vid, feats, stamps in (("ok", good, ts), ("huge", huge, ts), ("unordered", good, unordered)):
        store.write_video(vid, features=feats, timestamps=stamps, frame_times=stamps[:, :1], attrs=attrs)
        assert store.check_written(feats, stamps, attrs) == store.check(vid)
    passed = {vid: {c.name: c.passed for c in store.check(vid)} for vid in ("ok", "huge", "unordered")}
    assert all(passed["ok"].values())
    assert passed["huge"]["features_finite"] is False
    assert passed["unordered"]["timestamps_increasing"] is False
