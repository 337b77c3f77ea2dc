"""Feature store guarantees, the training view, exports and the loader."""

import json
import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from vid_assets.loader import ClipDataset, SegmentDataset, VideoDataset
from vid_assets.media import VideoCatalog, VideoRef
from vid_assets.store import FeatureStore
from vid_assets.store.exports import export_npy, failed_report
from vid_assets.store.training import read_videos_table, update_training_view
from vid_assets_tests.helpers import write_fake_video


def _write(store: FeatureStore, vid: str, n: int, seed: int, caption=False, dim=8):
    write_fake_video(store, vid, n, seed, caption=caption, dim=dim)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- store --------------------------------------------------------------------------------------------
def test_rematerializing_writes_identical_bytes(tmp_path):
    store = FeatureStore(tmp_path / "s.zarr")
    _write(store, "v", 30, seed=1)
    before = _files(store.video_path("v"))
    _write(store, "v", 30, seed=1)
    assert _files(store.video_path("v")) == before


def _slow_writer(root: str, started) -> None:
    store = FeatureStore(root, compression_level=9)
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((400_000, 1, 64)).astype(np.float32)  # ~50 MB float16: takes a while
    started.set()
    store.write_video(
        "v", features=feats, timestamps=np.zeros((len(feats), 2)), frame_times=np.zeros((len(feats), 1)), attrs={}
    )


@pytest.mark.parametrize("existing", [False, True], ids=["new-video", "replacing"])
def test_killed_writer_leaves_old_version_or_nothing(tmp_path, existing):
    root = tmp_path / "s.zarr"
    store = FeatureStore(root)
    if existing:
        _write(store, "v", 5, seed=3)
    ctx = mp.get_context("spawn")
    started = ctx.Event()
    proc = ctx.Process(target=_slow_writer, args=(str(root), started))
    proc.start()
    assert started.wait(60)
    time.sleep(0.5)  # mid-write
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert proc.exitcode == -signal.SIGKILL
    staged = list((root / ".staging").iterdir())
    assert staged, "the writer should have died while staging"
    if existing:
        assert store.list_videos() == ["v"]
        v = store.read_video("v")
        assert v.num_clips == 5 and v.attrs["content_hash"] == "h3"  # the old version, intact
    else:
        assert store.list_videos() == []


def _parallel_writer(root: str, vid: str, seed: int) -> None:
    _write(FeatureStore(root), vid, 50 + seed, seed)


def test_parallel_writers_never_corrupt_the_store(tmp_path):
    root = tmp_path / "s.zarr"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_parallel_writer, args=(str(root), f"v{i}", i)) for i in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = FeatureStore(root)
    assert store.list_videos() == [f"v{i}" for i in range(6)]
    for i in range(6):
        expected = np.random.default_rng(i).standard_normal((50 + i, 1, 8)).astype(np.float16)
        np.testing.assert_array_equal(store.read_video(f"v{i}").features, expected)


# -- training view --------------------------------------------------------------------------------------
def test_training_view_appends_incrementally_and_rebuilds_on_change(tmp_path):
    store = FeatureStore(tmp_path / "s.zarr")
    view = tmp_path / "view.zarr"
    for i, n in enumerate([5, 3, 6]):
        _write(store, f"v{i}", n, seed=i, caption=(i == 1))
    r = update_training_view(store, view, chunk_rows=4)
    assert r["mode"] == "rebuild" and r["num_rows"] == 14 and r["num_videos"] == 3
    first_chunks = {k: v for k, v in _files(view / "features").items()}
    mtimes = {p: p.stat().st_mtime_ns for p in (view / "features" / "c").rglob("*") if p.is_file()}

    _write(store, "v3", 7, seed=3)
    _write(store, "v4", 2, seed=4)
    r = update_training_view(store, view, chunk_rows=4)
    assert r["mode"] == "append" and r["added"] == ["v3", "v4"] and r["num_rows"] == 23
    # only the last partial chunk (rows 12-15) was rewritten; full chunks 0-2 are untouched
    for p, m in mtimes.items():
        if p.relative_to(view / "features" / "c").parts[0] != "3":
            assert (
                p.stat().st_mtime_ns == m
                and _files(view / "features")[str(p.relative_to(view / "features"))]
                == first_chunks[str(p.relative_to(view / "features"))]
            )

    from vid_assets.store.view import open_group

    g = open_group(view)
    table = read_videos_table(g)
    assert table["id"].tolist() == ["v0", "v1", "v2", "v3", "v4"]
    assert table["row_start"].tolist() == [0, 5, 8, 14, 21] and table["row_count"].tolist() == [5, 3, 6, 7, 2]
    assert table["has_caption"].tolist() == [False, True, False, False, False]
    s2v = g["segment_to_video"][:]
    for i, vid in enumerate(table["id"]):
        lo, n = table["row_start"][i], table["row_count"][i]
        assert (s2v[lo : lo + n] == i).all()
        np.testing.assert_array_equal(g["features"][lo : lo + n], store.read_video(str(vid)).features)
        np.testing.assert_array_equal(g["timestamps"][lo : lo + n], store.read_video(str(vid)).timestamps)
    assert json.loads(str(table["plan"][0])) == {"fps": 1.0, "mode": "fps"}

    _write(store, "v1", 4, seed=99)  # re-extracted video -> rebuild
    store.delete_video("v0")
    r = update_training_view(store, view, chunk_rows=4)
    assert r["mode"] == "rebuild" and r["changed"] == ["v1"] and r["removed"] == ["v0"] and r["num_rows"] == 19
    assert update_training_view(store, view, chunk_rows=4)["added"] == []  # idempotent


def test_crash_mid_append_is_invisible(tmp_path, monkeypatch):
    import vid_assets.store.training as tv

    store = FeatureStore(tmp_path / "s.zarr")
    view = tmp_path / "view.zarr"
    _write(store, "a", 6, seed=1)
    update_training_view(store, view, chunk_rows=4)
    _write(store, "b", 9, seed=2)

    def crash(root, rows, nvid):  # rows are written, the process dies before the commit marker
        raise KeyboardInterrupt

    monkeypatch.setattr(tv, "_commit", crash)
    with pytest.raises(KeyboardInterrupt):
        update_training_view(store, view, chunk_rows=4)
    monkeypatch.undo()
    ds = ClipDataset(view, batch_size=100, shuffle=False)
    assert ds.num_rows == 6  # rows written past the marker are not visible
    assert len(next(iter(ds))["features"]) == 6
    assert len(VideoDataset(view)) == 1
    r = update_training_view(store, view, chunk_rows=4)  # the next update writes over the leftovers
    assert r["num_rows"] == 15 and r["added"] == ["b"]


# -- loader -------------------------------------------------------------------------------------------------
@pytest.fixture
def view(tmp_path):
    store = FeatureStore(tmp_path / "s.zarr")
    for i in range(7):
        _write(store, f"v{i}", 5 + 3 * i, seed=i, caption=(i % 2 == 0))
    update_training_view(store, tmp_path / "view.zarr", chunk_rows=8)
    return tmp_path / "view.zarr", store


@pytest.mark.parametrize("workers", [0, 2])
def test_every_row_once_per_epoch_with_the_right_video(view, workers):
    path, store = view
    g_rows = sum(5 + 3 * i for i in range(7))
    ds = ClipDataset(path, batch_size=7, shuffle=True, seed=1)
    orders = []
    for epoch in range(2):
        ds.set_epoch(epoch)
        idx, vids, feats = [], [], []
        for b in DataLoader(ds, batch_size=None, num_workers=workers):
            assert b["features"].dtype == torch.float16 and b["features"].shape[1:] == (1, 8)
            idx.append(b["index"]), vids.append(b["video"]), feats.append(b["features"])
        idx, vids, feats = torch.cat(idx).numpy(), torch.cat(vids).numpy(), torch.cat(feats).numpy()
        assert sorted(idx.tolist()) == list(range(g_rows))  # exactly once
        starts = np.cumsum([0] + [5 + 3 * i for i in range(6)])
        expected_video = np.searchsorted(starts, idx, side="right") - 1
        np.testing.assert_array_equal(vids, expected_video)
        for row, v, f in zip(idx[:20], vids[:20], feats[:20], strict=True):
            np.testing.assert_array_equal(f, store.read_video(f"v{v}").features[row - starts[v]])
        orders.append(idx.tolist())
    assert orders[0] != orders[1]  # reshuffled per epoch


@pytest.mark.parametrize(("batch", "buffer"), [(1, 1), (7, 2)])
def test_loader_workers_read_on_threads_and_give_the_same_batches(view, batch, buffer):
    """``ds.loader(num_workers=2)`` reads chunks on two threads, ahead and in order: the batches and
    their order are exactly those of no workers, and a second epoch reshuffles as usual."""
    path, _ = view
    ds = ClipDataset(path, batch_size=batch, shuffle=True, seed=3, shuffle_buffer=buffer)

    def epoch(loader) -> list[tuple[list[int], np.ndarray]]:
        out = [(b["index"].tolist(), b["features"].numpy()) for b in loader]
        assert sorted(i for idx, _ in out for i in idx) == list(range(ds.num_rows))
        return out

    alone = epoch(DataLoader(ds, batch_size=None))
    threaded = ds.loader(num_workers=2, prefetch_factor=3, persistent_workers=True)
    assert len(threaded) == len(ds) and ds.read_threads == 2
    for (i, f), (j, g) in zip(epoch(threaded), alone, strict=True):
        assert i == j and np.array_equal(f, g)
    for i, _ in enumerate(threaded):  # an epoch left half way stops its readers
        if i == 2:
            break
    ds.set_epoch(1)
    assert [i for i, _ in epoch(threaded)] != [i for i, _ in alone]
    # a dataset that has been read still goes to spawned worker processes (its readers are per thread)
    spawned = DataLoader(ds, batch_size=None, num_workers=1, multiprocessing_context="spawn")
    assert sorted(i for b in spawned for i in b["index"].tolist()) == list(range(ds.num_rows))
    with pytest.raises(ValueError, match="makes the batches"):
        ds.loader(batch_size=4)


def test_small_batches_in_worker_processes_say_to_use_reader_threads(view):
    """A plain DataLoader with worker processes at batch 4 works, and its first worker says once,
    on stderr, that the hand-over sets the pace and what to use instead; ds.loader does not."""
    import subprocess
    import sys

    path, _ = view
    code = (
        "import sys\nfrom torch.utils.data import DataLoader\nfrom vid_assets.loader import ClipDataset\n"
        f"ds = ClipDataset({str(path)!r}, batch_size=4)\n"
        "loader = DataLoader(ds, batch_size=None, num_workers=2) if sys.argv[1] == 'processes' else ds.loader(2)\n"
        "print(sum(len(b['index']) for b in loader))\n"
    )
    for how, warned in (("processes", True), ("threads", False)):
        out = subprocess.run([sys.executable, "-c", code, how], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        assert int(out.stdout) == sum(5 + 3 * i for i in range(7))
        assert out.stderr.count("ds.loader(num_workers=N) reads on threads") == int(warned), out.stderr


def test_video_dataset_and_fsspec_memory_store(view):
    import fsspec

    path, store = view
    fs = fsspec.filesystem("memory")
    for p in path.rglob("*"):
        if p.is_file():
            fs.pipe(f"/view.zarr/{p.relative_to(path)}", p.read_bytes())
    for location in (path, "memory://view.zarr"):
        vds = VideoDataset(location)
        assert len(vds) == 7
        item = vds[3]
        assert item["video_id"] == "v3" and item["features"].shape == (14, 1, 8)
        np.testing.assert_array_equal(item["features"].numpy(), store.read_video("v3").features)
        assert "caption_embedding" in vds[2] and "caption_embedding" not in vds[3]
        rows = sum(len(b["index"]) for b in ClipDataset(location, batch_size=16))
        assert rows == sum(5 + 3 * i for i in range(7))


def _write_segments(store: FeatureStore, vid: str, segments: list[int], seed: int, caption=False) -> np.ndarray:
    """A video a segments plan sampled: one row per frame (``frames_per_clip=1``), ``segments``
    giving each row's segment."""
    rng = np.random.default_rng(seed)
    n = len(segments)
    feats = rng.standard_normal((n, 1, 8)).astype(np.float32)
    store.write_video(
        vid,
        features=feats,
        timestamps=np.stack([np.arange(n) * 0.25, np.arange(n) * 0.25 + 0.25], 1),
        frame_times=(np.arange(n) * 0.25)[:, None],
        attrs={"extractor": "test@1", "sampling_plan": {"mode": "segments", "segment_s": 5.0}},
        segments=np.array(segments),
        caption_embedding=rng.standard_normal(4).astype(np.float16) if caption else None,
    )
    return feats.astype(np.float16)


def _segment_batches(ds, workers=0) -> dict[str, np.ndarray]:
    """One epoch of ``ds`` through a DataLoader, batches concatenated and sorted by segment index."""
    batches = list(DataLoader(ds, batch_size=None, num_workers=workers))
    out = {k: torch.cat([b[k] for b in batches]).numpy() for k in batches[0]}
    order = np.argsort(out["index"])
    return {k: v[order] for k, v in out.items()}


@pytest.mark.parametrize("workers", [0, 2])
def test_segment_dataset_gives_the_seed_notes_layout(tmp_path, workers):
    """The seed notes trained on ``[segments, 20 frames, D]`` with a segment -> video map and one
    caption per video. Batches of a view over segments-plan videos give exactly that: each
    segment's per-frame rows (padded to the longest, with lengths), its video, its index in the
    video and the video's caption, every segment once per epoch, also where a segment runs across
    a chunk boundary; videos of other plans are left out, and ClipDataset rows carry their segment."""
    store = FeatureStore(tmp_path / "s.zarr")
    a = _write_segments(store, "a", [0, 0, 0, 3, 3, 3, 7, 7, 7], seed=1, caption=True)  # 3 of 8 segments
    _write(store, "b", 4, seed=2)  # an fps plan: no segments
    c = _write_segments(store, "c", [0, 0, 0, 1, 1], seed=3)  # a short last segment
    view = tmp_path / "view.zarr"
    update_training_view(store, view, chunk_rows=4)  # segments straddle chunks
    ds = SegmentDataset(view, batch_size=2, shuffle=True, seed=3)
    assert (ds.num_items, len(ds), ds.max_rows) == (5, 3, 3)
    got = _segment_batches(ds, workers)
    assert got["index"].tolist() == [0, 1, 2, 3, 4]  # each once
    assert got["video"].tolist() == [0, 0, 0, 2, 2] and got["segment"].tolist() == [0, 3, 7, 0, 1]
    assert got["lengths"].tolist() == [3, 3, 3, 3, 2] and got["features"].shape == (5, 3, 1, 8)
    np.testing.assert_array_equal(got["features"][:3], a.reshape(3, 3, 1, 8))
    np.testing.assert_array_equal(got["features"][3, :3], c[:3])
    np.testing.assert_array_equal(got["features"][4, :2], c[3:])
    assert (got["features"][4, 2] == 0).all() and (got["timestamps"][4, 2] == 0).all()  # padding
    np.testing.assert_array_equal(got["timestamps"][2, :, 0], [1.5, 1.75, 2.0])
    assert got["has_caption"].tolist() == [True, True, True, False, False]
    np.testing.assert_array_equal(got["caption_embedding"][0], store.read_video("a").caption_embedding)
    ds.set_epoch(1)
    assert _segment_batches(ds)["index"].tolist() == [0, 1, 2, 3, 4]
    # the same segment labels on flat batches and per video
    batch = next(iter(ClipDataset(view, batch_size=100, shuffle=False)))
    assert batch["segment"].tolist() == [0, 0, 0, 3, 3, 3, 7, 7, 7, -1, -1, -1, -1, 0, 0, 0, 1, 1]
    videos = VideoDataset(view)
    assert videos[0]["segments"].tolist() == [0, 0, 0, 3, 3, 3, 7, 7, 7] and "segments" not in videos[1]

    store.delete_video("a"), store.delete_video("c")
    update_training_view(store, view, chunk_rows=4)
    with pytest.raises(ValueError, match="sampled with a segments plan"):
        SegmentDataset(view)


def test_a_view_of_the_older_layout_is_rebuilt_with_segments(tmp_path):
    """A view written before the segment column (layout 1) is rebuilt on the next update rather
    than appended to, so no row is left without its segment."""
    import zarr

    store = FeatureStore(tmp_path / "s.zarr")
    _write_segments(store, "a", [0, 0, 1, 1], seed=1)
    view = tmp_path / "view.zarr"
    update_training_view(store, view, chunk_rows=4)
    g = zarr.open_group(view, mode="a")
    del g["segment"]
    g.attrs["layout"] = "vid_assets.training_view/1"
    with pytest.raises(ValueError, match="built before layout 2"):
        SegmentDataset(view)
    _write_segments(store, "b", [0, 0], seed=2)
    r = update_training_view(store, view, chunk_rows=4)
    assert r["mode"] == "rebuild" and r["num_rows"] == 6
    assert _segment_batches(SegmentDataset(view))["segment"].tolist() == [0, 1, 0]


# -- exports ------------------------------------------------------------------------------------------------
def test_npy_export_matches_the_store_and_failed_report(view, tmp_path):
    _, store = view
    paths = export_npy(store, tmp_path / "npy").written
    assert sorted(p.name for p in paths) == [f"v{i}.npy" for i in range(7)]
    arr = np.load(tmp_path / "npy" / "v2.npy")
    assert arr.dtype == np.float32 and arr.shape == (11, 8)
    np.testing.assert_allclose(arr, store.read_video("v2").features[:, 0].astype(np.float32))
    catalog = VideoCatalog(tmp_path / "catalog")
    catalog.register(VideoRef(key="bad-1", uri="/videos/bad.mp4", size=10, content_hash="x"))
    catalog.record_failure("bad-1", "VideoDecodeError", "not a readable video container")
    report = failed_report(catalog, tmp_path / "failed_videos.json")
    assert json.loads((tmp_path / "failed_videos.json").read_text()) == report
    assert report[0]["id"] == "bad-1" and report[0]["source"] == "/videos/bad.mp4"
    assert report[0]["error_class"] == "VideoDecodeError" and "time" in report[0]
    catalog.clear_failure("bad-1")
    assert failed_report(catalog) == []


def test_bfloat16_store_view_and_loader(tmp_path):
    store = FeatureStore(tmp_path / "s.zarr", dtype="bfloat16")
    rng = np.random.default_rng(0)
    feats = (rng.standard_normal((10, 1, 16)) * 100).astype(np.float32)
    store.write_video(
        "v",
        features=feats,
        timestamps=np.stack([np.arange(10.0), np.arange(10.0) + 1], 1),
        frame_times=np.zeros((10, 1)),
        attrs={"extractor": "x@1"},
    )
    back = store.read_video("v")
    assert back.attrs["feature_dtype"] == "bfloat16" and back.features.dtype == np.float32
    np.testing.assert_allclose(back.features, feats, rtol=2**-7)  # bf16 keeps float32's range, 8 bits of mantissa
    assert not np.allclose(back.features, feats.astype(np.float16).astype(np.float32))  # not float16
    update_training_view(store, tmp_path / "view.zarr", chunk_rows=4)
    batch = next(iter(ClipDataset(tmp_path / "view.zarr", batch_size=10, shuffle=False)))
    assert batch["features"].dtype == torch.bfloat16
    np.testing.assert_array_equal(batch["features"].float().numpy(), back.features)
    assert VideoDataset(tmp_path / "view.zarr")[0]["features"].dtype == torch.bfloat16
    with pytest.raises(ValueError, match="feature dtype must be one of"):
        FeatureStore(tmp_path / "x.zarr", dtype="int8")


def _ddp_rank(rank: int, world: int, view: str, rendezvous: str, out: str) -> None:
    """One DDP rank (a real gloo process group): reads its share of an epoch, 2 workers each."""
    import torch.distributed as dist
    from torch.utils.data import DataLoader

    from vid_assets.loader import ClipDataset

    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world)
    try:
        ds = ClipDataset(view, batch_size=3, shuffle=True, seed=5)  # no rank given: taken from the group
        ds.set_epoch(1)
        seen = [int(i) for b in DataLoader(ds, batch_size=None, num_workers=2) for i in b["index"]]
        np.save(out, np.asarray(seen, dtype=np.int64))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_ddp_ranks_read_every_row_exactly_once_per_epoch(view, tmp_path):
    """Two CPU processes in a gloo process group, each with 2 DataLoader workers: the ranks'
    rows are disjoint and together every row of the view, once."""
    import torch.multiprocessing as tmp_mp

    path, _ = view
    outs = [str(tmp_path / f"rank{r}.npy") for r in range(2)]
    ctx = tmp_mp.get_context("spawn")
    procs = [
        ctx.Process(target=_ddp_rank, args=(r, 2, str(path), str(tmp_path / "rendezvous"), outs[r])) for r in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=180)
        assert p.exitcode == 0
    seen = [np.load(o) for o in outs]
    rows = int(ClipDataset(path).num_rows)
    assert len(seen[0]) and len(seen[1]) and not set(seen[0]) & set(seen[1])
    assert sorted(np.concatenate(seen).tolist()) == list(range(rows))
