"""Feature sets declared in YAML: their own chains over the shared partitions, their own store
groups and staleness, fidelity of per-frame DINOv2 features, and runs that would mix features."""

from __future__ import annotations

import shutil
import sys
import textwrap
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import torch

from vid_assets.defs.build import build_definitions, sets_of
from vid_assets.defs.resources import ExtractorResource
from vid_assets.defs.videos.sensors import build_videos_sensor
from vid_assets.defs.videos.status import progress, stale_partitions
from vid_assets.feature_sets import FeatureSetError, load_sets, read_sets
from vid_assets.media import iter_frames
from vid_assets_tests.helpers import normalised, save_tiny_timm

# DINOv2's architecture shrunk to one 64-wide block; built for 518 px like the published models
TINY_DINOV2 = {"depth": 1, "embed_dim": 64, "num_heads": 2}


@pytest.fixture(scope="module")
def tiny_dinov2(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "tiny_dinov2"
    model = save_tiny_timm(folder, "vit_small_patch14_dinov2", **TINY_DINOV2)
    return folder, model


def write_sets(path, body: str):
    path.write_text(textwrap.dedent(body))
    return path


def test_declarations_that_cannot_work_fail_with_the_field_named(tmp_path):
    cases = {
        "sets: {Bad-Name: {}}": "lower-case letters",
        "sets: {a: {extractr: x}}": "unknown field(s) extractr",
        "sets: {a: {sampling: {fsp: 1}}}": "unknown sampling field(s) fsp",
        "sets: {a: {precision: fp8}}": "precision must be one of",
        "sets: {a: {sampling: {mode: sometimes}}}": "sampling:",
        "sets: {a: {store: {dtype: int8}}}": "store.dtype",
        "set: {a: {}}": "unknown top-level field(s) set",
        "sets: [a, b]": "expected a mapping",
    }
    for i, (text, said) in enumerate(cases.items()):
        path = write_sets(tmp_path / f"s{i}.yaml", text)
        with pytest.raises(FeatureSetError, match=said.replace("(", r"\(").replace(")", r"\)")) as err:
            read_sets(path)
        assert str(path) in str(err.value)
    one = write_sets(tmp_path / "one.yaml", "sets: {frames: {sampling: {fps: 1}}}")
    two = write_sets(tmp_path / "two.yaml", "sets: {frames: {sampling: {fps: 2}}}")
    with pytest.raises(FeatureSetError, match="already declared"):
        load_sets([str(one), str(two)])
    with pytest.raises(FeatureSetError, match="does not exist"):
        load_sets([str(tmp_path / "missing.yaml")])
    sets = load_sets([str(one)])
    assert list(sets) == ["default", "frames"] and sets["frames"].sampling == {"fps": 1}


def _defs(root, sets_file, extractor=None):
    return build_definitions(
        videos_dir=str(root / "videos"),
        work_dir=str(root / "work"),
        store_dir=str(root / "features.zarr"),
        extractor=extractor or ExtractorResource(device="cpu"),
        sets=str(sets_file),
    )


def _sets_yaml(root, folder, fps: float = 1.0):
    return write_sets(
        root / "sets.yaml",
        f"""
        sets:
          frames518:
            description: tiny DINOv2 per 1-fps frame at its own 518 px
            extractor: local-dir:{folder}
            sampling: {{fps: {fps}, frames_per_clip: 1}}
          frames224:
            extractor: local-dir:{folder}
            args: {{img_size: 224}}
            sampling: {{fps: {fps}, frames_per_clip: 1}}
        """,
    )


def test_two_sets_over_one_folder_from_one_sensor_tick(tmp_path, media_dir, tiny_dinov2):
    """One sensor tick registers the video once; the run it requests materializes every set's
    chain; each set has its own store group, training view and staleness. DINOv2 runs at 518 and,
    with ``img_size: 224``, at 224, and its stored per-frame rows equal the model run by hand."""
    folder, _ = tiny_dinov2
    (tmp_path / "videos").mkdir()
    shutil.copyfile(media_dir / "clip_a.mp4", tmp_path / "videos" / "clip_a.mp4")
    defs = _defs(tmp_path, _sets_yaml(tmp_path, folder))
    graph = defs.resolve_asset_graph()
    groups = {graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert {"video_features", "frames518", "frames224"} <= groups
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        sensor = build_videos_sensor(str(tmp_path / "videos"))
        ctx = dg.build_sensor_context(instance=instance, resources={"workspace": defs.resources["workspace"]})
        tick = sensor(ctx)
        for req in tick.dynamic_partitions_requests:
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        (request,) = tick.run_requests
        key = request.partition_key
        job = defs.resolve_job_def(sensor.job_name)
        result = job.execute_in_process(partition_key=key, instance=instance, tags=request.tags)
        assert result.success
        # the two DINOv2 sets share the 1-fps plan (frames at 518 and 224 px): one step, one decode
        said = [e.user_message for e in instance.all_logs(result.run_id)]
        assert any("one decode of 1 video(s) feeds the sets frames518, frames224" in m for m in said), said
        for name in ("stored_features", "frames518/stored_features", "frames224/stored_features"):
            assert instance.get_materialized_partitions(dg.AssetKey.from_user_string(name)) == {key}
        fs = defs.resources["feature_store"]
        sets = defs.metadata["feature_sets"].value
        assert set(sets) == {"default", "frames518", "frames224"}
        stores = {name: fs.store(_set(defs, name)) for name in sets}
        assert stores["frames518"].root == tmp_path / "features.zarr" / "sets" / "frames518"
        ref = defs.resources["workspace"].catalog().get(key)
        for name, size in (("frames518", 518), ("frames224", 224)):
            fset = _set(defs, name)
            v = stores[name].read_video(key)
            plan = fset.config().plan
            frames = list(iter_frames(ref.uri, plan))
            # one row per sampled frame, timed by the frame's pts
            assert v.features.shape == (len(frames), 1, 64) and v.attrs["clip_spec"]["crop_size"] == size
            assert np.array_equal(v.frame_times[:, 0], [f.pts_s for f in frames])
            model = _built(folder, size)
            pixels = np.stack([f.image for f in frames])
            top, left = (pixels.shape[1] - size) // 2, (pixels.shape[2] - size) // 2
            x = normalised(
                pixels[:, top : top + size, left : left + size], (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
            )
            with torch.no_grad():
                expected = model.forward_head(model.forward_features(x), pre_logits=True).numpy()
            stored = v.features[:, 0].astype(np.float32)
            cos = (expected * stored).sum(1) / (np.linalg.norm(expected, axis=1) * np.linalg.norm(stored, axis=1))
            assert cos.min() >= 0.9999, (name, cos)
        # the default set is untouched by the others: its own rows (2-frame clips, EfficientNet)
        assert stores["default"].read_video(key).features.shape[1:] == (1, 1280)
        # each set its own training view
        assert defs.resolve_job_def("build_training_view").execute_in_process(instance=instance).success
        views = {fs.training_view_path(_set(defs, n)) for n in sets}
        assert len(views) == 3 and all((tmp_path / p).exists() for p in views)

        # a changed set makes exactly its own partitions stale
        changed = _defs(tmp_path, _sets_yaml(tmp_path, folder, fps=2.0))
        stale = {k: v for k, v in stale_partitions(instance, changed).items() if v}
        assert set(stale) == {f"frames{s}/{a}" for s in (518, 224) for a in _STAGES}
        assert not any(stale_partitions(instance, defs).values())
        report = progress(instance, defs.resources["workspace"].catalog(), defs=changed)
        assert report["assets"]["stored_features"]["stale"] == 0
        assert report["assets"]["frames224/stored_features"] == {
            **report["assets"]["frames224/stored_features"],
            "done": 1,
            "stale": 1,
        }


_STAGES = ("decoded_frames", "clip_tensors", "clip_embeddings", "stored_features")


def _set(defs, name):
    return sets_of(defs)[name]


def _built(folder, size):
    import timm

    kw = {} if size == 518 else {"img_size": size}
    return timm.create_model(f"local-dir:{folder}", pretrained=True, **kw).eval()


def test_a_run_whose_config_would_change_a_sets_features_is_refused(tmp_path, media_dir):
    """Re-running at another fps from the Launchpad used to store features nobody could tell apart
    from the set's; now the run fails before any work and says what to do. Runtime settings pass."""
    (tmp_path / "videos").mkdir()
    shutil.copyfile(media_dir / "clip_b.mp4", tmp_path / "videos" / "clip_b.mp4")
    defs = _defs(tmp_path, write_sets(tmp_path / "none.yaml", "sets: {}"))
    from vid_assets.demo import register_videos

    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        (ref,) = register_videos(instance, defs, [tmp_path / "videos" / "clip_b.mp4"])
        job = defs.resolve_job_def("embed_videos")
        refused = job.execute_in_process(
            partition_key=ref.key,
            instance=instance,
            raise_on_error=False,
            run_config={"resources": {"sampling": {"config": {"fps": 1.0}}}},
        )
        assert not refused.success
        (failure,) = [e for e in refused.all_events if e.is_step_failure]
        said = failure.step_failure_data.user_failure_data.description
        assert "sampling.fps: 2.0 -> 1.0" in said and "feature set" in said and "VID_ASSETS_SETS" in said
        assert not defs.resources["feature_store"].store().has_video(ref.key)
        ok = job.execute_in_process(
            partition_key=ref.key,
            instance=instance,
            run_config={"resources": {"sampling": {"config": {"decode_time_budget_s": 120.0}}}},
        )
        assert ok.success and defs.resources["feature_store"].store().has_video(ref.key)


def test_seed_002_export_npy_per_set_through_the_cli(tmp_path, media_dir, tiny_dinov2):
    """`vid-assets export npy OUT --set NAME`: OUT/<video id>.npy float32 [frames, D] named by the
    user's own id (two `x.mp4` in two folders both get their content hash), failed_videos.json with
    the broken file and its reason, and a second export writes nothing."""
    import json
    import os
    import subprocess

    from vid_assets.demo import register_videos
    from vid_assets.samples import write_synthetic_video

    folder, _ = tiny_dinov2
    videos = tmp_path / "videos"
    for sub, name in (("a", "clip_a.mp4"), ("b", "clip_b.mp4")):
        (videos / sub).mkdir(parents=True)
        shutil.copyfile(media_dir / name, videos / sub / "x.mp4")
    write_synthetic_video(videos / "walk.mp4", seconds=3.0, fps=24, seed=7)
    shutil.copyfile(media_dir / "not_a_video.mp4", videos / "broken.mp4")
    sets_file = write_sets(
        tmp_path / "sets.yaml",
        f"sets: {{frames: {{extractor: 'local-dir:{folder}', args: {{img_size: 224}},"
        " sampling: {fps: 1, frames_per_clip: 1}}}",
    )
    defs = _defs(tmp_path, sets_file)
    fset = sets_of(defs)["frames"]
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        paths = [videos / "a" / "x.mp4", videos / "b" / "x.mp4", videos / "walk.mp4", videos / "broken.mp4"]
        refs = register_videos(instance, defs, paths)
        job = defs.resolve_job_def("embed_videos")
        chain = [dg.AssetKey(["frames", s]) for s in _STAGES]
        for ref in refs:
            job.execute_in_process(
                partition_key=ref.key, instance=instance, asset_selection=chain, raise_on_error=False
            )
    env = {
        **os.environ,
        "VID_ASSETS_SETS": str(sets_file),
        "VID_ASSETS_STORE": str(tmp_path / "features.zarr"),
        "VID_ASSETS_WORK": str(tmp_path / "work"),
    }
    out = tmp_path / "features"

    def export() -> str:
        done = subprocess.run(
            [Path(sys.executable).parent / "vid-assets", "export", "npy", str(out), "--set", "frames"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    said = export()
    assert "3 .npy written, 0 unchanged" in said and "1 failed" in said
    by_name = {p.name: p for p in out.glob("*.npy")}
    store = defs.resources["feature_store"].store(fset)
    digests = {r.uri: r.content_hash[:8] for r in refs}
    assert set(by_name) == {
        "walk.npy",
        f"x-{digests[str(videos / 'a' / 'x.mp4')]}.npy",
        f"x-{digests[str(videos / 'b' / 'x.mp4')]}.npy",
    }
    walk = np.load(by_name["walk.npy"])
    stored = store.read_video(refs[2].key)
    assert walk.dtype == np.float32 and walk.shape == (stored.num_clips, 64) == (3, 64)  # 3 s at 1 fps
    np.testing.assert_array_equal(walk, stored.features[:, 0].astype(np.float32))
    (failed,) = json.loads((out / "failed_videos.json").read_text())
    assert failed["user_id"] == "broken" and failed["stage"] == "decode" and failed["message"]
    assert failed["feature_set"] == "frames"
    stamp = by_name["walk.npy"].stat().st_mtime_ns
    assert "0 .npy written, 3 unchanged" in export()
    assert by_name["walk.npy"].stat().st_mtime_ns == stamp


def test_seed_003_vae_latent_segments_with_caption_embeddings(tmp_path, media_dir):
    """The VAE set: 5-s segments of 20 frames (4 fps), 2 segments, one seeded random 256-px crop
    per segment; per-frame latents [S, 1, 20, 4, 32, 32] float16 equal to diffusers' encoder run by
    hand on the same crops (scaled), a CLIP-text caption embedding once per video, and the loader
    yields (latents, caption) batches through segment_to_video."""
    from torch.utils.data import DataLoader

    from vid_assets.clips.build import crop_boxes
    from vid_assets.demo import register_videos
    from vid_assets.extractors.text import create_text_embedder
    from vid_assets.loader import LatentCaptionDataset
    from vid_assets.media import VideoRef
    from vid_assets.samples import write_synthetic_video
    from vid_assets_tests.helpers import save_tiny_clip, save_tiny_vae

    vae = save_tiny_vae(tmp_path / "tiny_vae")
    save_tiny_clip(tmp_path / "tiny_clip")
    (tmp_path / "videos").mkdir()
    video = tmp_path / "videos" / "walk.mp4"
    write_synthetic_video(video, seconds=11.0, fps=24, size=(320, 240), seed=5)
    sets_file = write_sets(
        tmp_path / "sets.yaml",
        f"""
        sets:
          latents:
            extractor: vae:{tmp_path / "tiny_vae"}
            sampling: {{mode: segments, segment_s: 5, frames_per_segment: 20, max_segments: 2, crop: random, seed: 3}}
            text_model: {tmp_path / "tiny_clip"}
        """,
    )
    defs = _defs(tmp_path, sets_file)
    fset = sets_of(defs)["latents"]
    caption = "a person walks a dog along the beach"
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        (ref,) = register_videos(instance, defs, [video])
        defs.resources["workspace"].catalog().register(VideoRef.from_path(video, caption=caption))
        chain = [dg.AssetKey(["latents", s]) for s in (*_STAGES, "training_view")]
        job = defs.resolve_job_def("embed_videos")
        run = job.execute_in_process(partition_key=ref.key, instance=instance, asset_selection=chain[:4])
        assert run.success
        checks = [e.event_specific_data for e in run.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
        assert checks and all(c.passed for c in checks), checks
        view_job = defs.resolve_job_def("build_training_view")
        assert view_job.execute_in_process(instance=instance, asset_selection=[chain[4]]).success
    store = defs.resources["feature_store"].store(fset)
    g = store.open_video(ref.key)
    assert g["features"].dtype == np.float16 and g["features"].shape == (2, 1, 20, 4, 32, 32)
    assert g["features"].compressors[0].to_dict()["configuration"]["cname"] == "zstd"
    v = store.read_video(ref.key)
    assert v.segments.tolist() == [0, 2] or len(set(v.segments.tolist())) == 2
    config = fset.config()
    frames = list(iter_frames(ref.uri, config.plan))
    assert len(frames) == 40 and np.array_equal(v.frame_times.reshape(-1), [f.pts_s for f in frames])
    for s, seg in enumerate(sorted({f.segment for f in frames})):
        images = np.stack([f.image for f in frames if f.segment == seg])
        ((top, left, _),) = crop_boxes(*images.shape[1:3], config.clip, seg)  # one box for the whole segment
        crops = images[:, top : top + 256, left : left + 256]
        x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 127.5 - 1
        with torch.no_grad():
            expected = (vae.encode(x).latent_dist.mean * vae.config.scaling_factor).numpy().reshape(20, -1)
        stored = v.features[s, 0].astype(np.float32).reshape(20, -1)
        cos = (expected * stored).sum(1) / (np.linalg.norm(expected, axis=1) * np.linalg.norm(stored, axis=1))
        assert cos.min() >= 0.9999, (s, cos)
    want = create_text_embedder(str(tmp_path / "tiny_clip")).embed([caption])[0]
    np.testing.assert_allclose(v.caption_embedding.astype(np.float32), want, atol=2e-3)
    ds = LatentCaptionDataset(defs.resources["feature_store"].training_view_path(fset), batch_size=2)
    ((latents, captions),) = list(DataLoader(ds, batch_size=None, num_workers=0))
    # with worker processes, as training scripts configure it: the same segments, each once
    by_workers = list(DataLoader(LatentCaptionDataset(ds.location, batch_size=1), batch_size=None, num_workers=2))
    assert len(by_workers) == 2 and sorted(float(x[0].float().sum()) for x in by_workers) == sorted(
        float(x.float().sum()) for x in latents
    )
    assert latents.shape == (2, 20, 4, 32, 32) and latents.dtype == torch.float16
    assert captions.shape == (2, len(want))
    np.testing.assert_array_equal(
        np.sort(latents.numpy().reshape(2, -1), 0), np.sort(v.features[:, 0].reshape(2, -1), 0)
    )


def test_the_example_sets_file_builds_offline(tmp_path):
    """examples/feature_sets.yaml (the README's) loads into a code location with no network: the
    seed recipes' chains, groups and fitted sizes come from configs, not downloads."""
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "feature_sets.yaml"
    defs = _defs(tmp_path, example)
    sets = sets_of(defs)
    assert list(sets) == ["default", "dinov2_frames", "vae_latents"]
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey(["vae_latents", "stored_features"])).group_name == "vae_latents"
    assert sets["dinov2_frames"].config().clip.crop_size == 224  # img_size: 224, not the cfg's 518
    vae = sets["vae_latents"].config()
    assert (vae.clip.crop_size, vae.clip.frames_per_clip, vae.plan.short_side) == (256, 20, 256)
