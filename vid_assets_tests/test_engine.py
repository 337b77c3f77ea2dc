"""The one engine, and the Dagster step that runs it: streamed, subset and crashed runs."""

import os
import shutil
import subprocess
import sys

import dagster as dg
import numpy as np
import pytest

from vid_assets import engine
from vid_assets.defs.build import build_definitions
from vid_assets.defs.resources import ExtractorResource
from vid_assets.defs.videos.sensors import RANGE_END, RANGE_START
from vid_assets.demo import register_videos
from vid_assets.extractors import get_extractor
from vid_assets.fit import config_for
from vid_assets.partial_runs import CLIPS, EMBEDDINGS, FRAMES
from vid_assets.samples import write_synthetic_video
from vid_assets.store.gc import collect_garbage

FULL = ["decoded_frames", "clip_tensors", "clip_embeddings", "stored_features"]


@pytest.fixture(scope="module")
def ext():
    return get_extractor("efficientnet_lite0", device="cpu")


@pytest.fixture()
def videos(tmp_path, media_dir):
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("clip_a.mp4", "clip_b.mp4"):
        shutil.copyfile(media_dir / name, folder / name)
    return sorted(folder.iterdir())


def test_engine_gives_each_video_its_result_or_its_reason(ext, media_dir):
    """Good videos give features and timestamps; a broken one fails alone, at the decode stage;
    decoder threads give the same features as decoding inline."""
    sources = [str(media_dir / n) for n in ("clip_a.mp4", "not_a_video.mp4", "clip_b.mp4")]
    config = config_for(ext)
    inline = {r.index: r for r in engine.extract(sources, ext, config, num_workers=0)}
    assert sorted(inline) == [0, 1, 2]
    assert inline[1].stage == "decode" and "not a readable video container" in inline[1].error
    a, b = inline[0], inline[2]
    assert a.ok and a.features.shape == (3, 1, 1280) and a.timestamps.shape == (3, 2)
    assert a.frame_times.shape == (3, 2) and a.top_labels.shape == (3, 1, 5)
    assert a.summary["frames"] == 6 and a.summary["contact_sheet_jpeg"][:2] == b"\xff\xd8"
    assert b.ok and b.features.shape[0] == 3 and b.summary["info"]["width"] == 200
    threaded = {r.index: r for r in engine.extract(sources, ext, config, num_workers=2, backend="threads")}
    for i in (0, 2):
        np.testing.assert_allclose(threaded[i].features, inline[i].features, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(threaded[i].timestamps, inline[i].timestamps)


def test_one_decode_feeds_two_models_as_two_separate_runs_would(ext, media_dir, monkeypatch, tmp_path):
    """Two feature sets that share a plan (here: fps 2, frames at 256 and 64 px short sides, clips
    of 2 and 1 frames): one decode of each video, each model gets exactly the batches and
    features a run of its own gives, a broken video fails in both, over inline and threaded
    decoders."""
    from vid_assets.clips import batches
    from vid_assets.fit import fit_config
    from vid_assets_tests.helpers import TINY_VIT, save_tiny_timm

    save_tiny_timm(tmp_path / "vit", "vit_base_patch16_224", **TINY_VIT)
    vit = get_extractor(f"local-dir:{tmp_path / 'vit'}", device="cpu")
    vit.batch_size = 8
    configs = [config_for(ext), fit_config(vit, frames_per_clip=1)]
    assert configs[0].plan.short_side != configs[1].plan.short_side and engine.shares_decode(*configs)
    sources = [str(media_dir / n) for n in ("clip_a.mp4", "not_a_video.mp4", "clip_b.mp4")]
    alone = [
        {r.index: r for r in engine.extract(sources, model, config, num_workers=0)}
        for model, config in zip((ext, vit), configs, strict=True)
    ]
    opened = []
    real = batches.iter_frames
    monkeypatch.setattr(batches, "iter_frames", lambda src, *a, **k: opened.append(src) or real(src, *a, **k))
    for workers in (0, 2):
        opened.clear()
        feed = engine.decode_feed(sources, configs[0], ext, also=[(vit, configs[1])], num_workers=workers)
        together = {}
        for target, result in engine.run_many(feed, [(ext, configs[0]), (vit, configs[1])]):
            together[target, result.index] = result
        assert sorted(opened) == sorted(sources)  # each video decoded once for both
        assert sorted(together) == [(t, i) for t in (0, 1) for i in (0, 1, 2)]
        for t in (0, 1):
            assert together[t, 1].stage == "decode" and not together[t, 1].ok
            for i in (0, 2):
                mine, own = together[t, i], alone[t][i]
                np.testing.assert_allclose(mine.features, own.features, rtol=1e-5, atol=1e-5)
                np.testing.assert_array_equal(mine.frame_times, own.frame_times)
                assert mine.summary["frames"] == own.summary["frames"]
        assert together[1, 0].features.shape == (6, 1, 64)  # a row per frame at 64 px


def test_many_short_videos_share_passes_and_come_back_whole(ext, media_dir):
    """Passes cut across videos (3 clips each, 4 per pass): every video still gets its own rows."""
    config = config_for(ext)
    sources = [str(media_dir / "clip_a.mp4")] * 5
    results = list(engine.extract(sources, ext, config, num_workers=0))
    assert sorted(r.index for r in results) == list(range(5))
    first = results[0].features
    for r in results:
        assert r.features.shape == first.shape
        np.testing.assert_allclose(r.features, first, rtol=1e-4, atol=1e-4)


def _definitions(root, videos_dir):
    return build_definitions(
        videos_dir=str(videos_dir),
        work_dir=str(root / "work"),
        store_dir=str(root / "features.zarr"),
        extractor=ExtractorResource(device="cpu"),
    )


def _stored(defs, keys):
    store = defs.resources["feature_store"].store()
    return {k: store.open_video(k)["features"][...].tobytes() for k in keys}


def _run(defs, instance, keys, selection):
    tags = {RANGE_START: keys[0], RANGE_END: keys[-1]}
    return defs.resolve_job_def("embed_videos").execute_in_process(
        instance=instance, tags=tags, asset_selection=[dg.AssetKey(a) for a in selection]
    )


def test_streamed_and_subset_runs_store_byte_identical_features(tmp_path, videos):
    """The whole chain streamed; decode + clips kept, then embeddings + store from them; and
    embeddings + store with nothing kept (decoded again): the same bytes in the store."""
    stored = {}
    for name, steps in {
        "streamed": [FULL],
        "kept": [FULL[:2], FULL[2:]],
        "redecoded": [FULL[2:]],
    }.items():
        root = tmp_path / name
        defs = _definitions(root, videos[0].parent)
        (root / "home").mkdir(parents=True)
        with dg.instance_for_test(temp_dir=str(root / "home")) as instance:
            keys = [r.key for r in register_videos(instance, defs, videos)]
            artifacts = defs.resources["workspace"].artifacts()
            for selection in steps:
                assert _run(defs, instance, keys, selection).success
                if selection == FULL[:2]:  # a run that stops before the model keeps what the next reads
                    assert all(artifacts.exists(FRAMES, k) and artifacts.exists(CLIPS, k) for k in keys)
            for asset in steps[-1]:
                assert instance.get_materialized_partitions(dg.AssetKey(asset)) == set(keys)
            assert artifacts.total_bytes() == 0  # stored: the intermediates are gone
            stored[name] = _stored(defs, keys)
    assert stored["streamed"] == stored["kept"] == stored["redecoded"]


def test_a_store_only_run_reads_kept_embeddings_and_redecodes_when_they_are_gone(tmp_path, videos):
    defs = _definitions(tmp_path, videos[0].parent)
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        keys = [r.key for r in register_videos(instance, defs, videos)]
        artifacts = defs.resources["workspace"].artifacts()
        assert _run(defs, instance, keys, ["clip_embeddings"]).success
        assert all(artifacts.exists(EMBEDDINGS, k) for k in keys)
        assert _run(defs, instance, keys, ["stored_features"]).success
        first = _stored(defs, keys)
        assert artifacts.total_bytes() == 0
        # intermediates deleted (as after any stored run): a store-only run decodes again
        assert _run(defs, instance, keys, ["stored_features"]).success
        assert _stored(defs, keys) == first


CRASH = """
import os, signal, sys
import dagster as dg
import vid_assets.store.features as features
from vid_assets.defs.build import build_definitions
from vid_assets.defs.resources import ExtractorResource

def die():  # the process dies with the video's arrays written, before they are published
    os.kill(os.getpid(), signal.SIGKILL)

features.library_versions = die
defs = build_definitions(work_dir=sys.argv[1], store_dir=sys.argv[2], extractor=ExtractorResource(device="cpu"))
defs.resolve_job_def("embed_videos").execute_in_process(instance=dg.DagsterInstance.get(), partition_key=sys.argv[3])
"""


def test_a_crash_mid_write_leaves_nothing_half_written_and_gc_frees_it(tmp_path, videos):
    defs = _definitions(tmp_path, videos[0].parent)
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    work, root = defs.resources["workspace"].work_dir, defs.resources["feature_store"].root
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        (ref,) = register_videos(instance, defs, videos[:1])
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    out = subprocess.run(
        [sys.executable, "-c", CRASH, work, root, ref.key], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == -9, out.stderr[-2000:]
    store = defs.resources["feature_store"].store()
    assert store.list_videos() == [] and not store.has_video(ref.key)  # nothing visible
    staged = list((store.root / ".staging").iterdir())
    assert staged and any((p / "features").exists() for p in staged)  # the half-written video
    # the CLI, as a user runs it after a crash
    cli = subprocess.run(
        [sys.executable, "-m", "vid_assets.cli", "gc", "--min-age", "0"],
        env={**env, "VID_ASSETS_WORK": work, "VID_ASSETS_STORE": root},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert "freed" in cli.stdout and not cli.stdout.startswith("freed 0 B")
    assert list((store.root / ".staging").iterdir()) == []
    freed = collect_garbage(defs.resources["workspace"].artifacts(), store, older_than_s=0)
    assert freed["staging_bytes"] == 0  # nothing left to free
    with dg.instance_for_test(temp_dir=str(home)) as instance:  # the retry stores the video whole
        result = defs.resolve_job_def("embed_videos").execute_in_process(instance=instance, partition_key=ref.key)
        assert result.success and store.read_video(ref.key).features.shape == (3, 1, 1280)


def test_a_long_videos_rows_leave_the_heap_flat(tmp_path):
    """The engine keeps a video's feature rows until its last clip is done. Kept as views, each
    pass's rows held that pass's whole output, allocated among the pass's freed buffers: the heap
    grew by a fragment per pass (~1.2 GB over a 20-min video, with glibc's thresholds raised as
    every extractor process raises them). Kept as copies, RSS stays flat through a long video.
    Run in a fresh interpreter, so that the measurement is this heap's alone."""
    if not sys.platform.startswith("linux"):
        pytest.skip("RSS from /proc")
    video = tmp_path / "four_min.mp4"
    write_synthetic_video(video, seconds=240, fps=30, size=(160, 120), seed=3, preset="veryfast")
    code = f"""
from vid_assets import engine
from vid_assets.extractors import get_extractor
from vid_assets.fit import config_for

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

ext = get_extractor("efficientnet_lite0", device="cpu")
ext.batch_size = 8  # the engine's CPU default: 4 clips of 2 frames a pass, 60 passes
rss = []
config = config_for(ext)
feed = engine.decode_feed([{str(video)!r}], config, ext)
(result,) = engine.run(feed, ext, config, on_pass=lambda clips: rss.append(rss_mb()))
assert result.ok and len(result.features) == 240, (result.error, len(result.features))
print(len(rss), rss[len(rss) // 4], max(rss))  # after the warm-up; the peak
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    passes, warm, peak = map(float, out.stdout.split())
    assert passes >= 60 and peak - warm < 40, (passes, warm, peak)


def test_periodic_trim_hands_a_fragmented_heap_back():
    """With glibc's thresholds raised (tune_malloc), freed heap stays in the process: a heap left
    fragmented by a long job keeps its pages until the engine's periodic trim returns them. Run in
    a fresh interpreter, so that the measurement is this heap's alone."""
    code = """
import numpy as np
from vid_assets.runtime.memory import PeriodicTrim, tune_malloc

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

assert tune_malloc()
blocks = [np.ones(256 * 1024, np.uint8) for _ in range(1600)]  # 400 MiB of 256-KiB heap blocks
keep = blocks[::64]  # a few survivors scattered through the heap: nothing at its top to trim
del blocks
before = rss_mb()
PeriodicTrim(every_s=0.0)()
print(before, rss_mb())
"""
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc's malloc_trim: Linux only")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    before, after = map(float, out.stdout.split())
    assert before > 300 and after < before - 250, (before, after)
