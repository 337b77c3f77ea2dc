"""End to end through Dagster: real on-disk instance, real videos, real Zarr store."""

import os
import shutil
from contextlib import contextmanager

import dagster as dg
import numpy as np
import pytest
import torch
from dagster._core.definitions.data_version import DATA_VERSION_TAG

from vid_assets.defs.build import build_definitions
from vid_assets.defs.resources import ExtractorResource, HubResource, SamplingResource
from vid_assets.defs.videos.partitions import videos_partitions
from vid_assets.demo import register_videos
from vid_assets.media import VideoRef, iter_frames
from vid_assets.partial_runs import CLIPS, EMBEDDINGS, FRAMES

ASSETS = ["decoded_frames", "clip_tensors", "clip_embeddings", "stored_features"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, media_dir):
    """Register three videos (one corrupt) and materialize every partition once."""
    root = tmp_path_factory.mktemp("pipeline")
    videos = root / "videos"
    videos.mkdir()
    for name in ("clip_a.mp4", "clip_b.mp4"):
        shutil.copyfile(media_dir / name, videos / name)
    shutil.copyfile(media_dir / "not_a_video.mp4", videos / "broken.mp4")
    defs = build_definitions(
        videos_dir=str(videos),
        work_dir=str(root / "work"),
        store_dir=str(root / "features.zarr"),
        extractor=ExtractorResource(device="cpu"),
        hub=HubResource(target_dir=str(root / "hub_mirror"), publish_every_n_videos=2),
    )
    (root / "dagster_home").mkdir()
    with dg.instance_for_test(temp_dir=str(root / "dagster_home")) as instance:
        refs = register_videos(instance, defs, sorted(videos.iterdir()))
        catalog = defs.resources["workspace"].catalog()
        catalog.register(VideoRef.from_path(videos / "clip_a.mp4", caption="a red ball bouncing over a mosaic"))
        keys = {r.uri.rsplit("/", 1)[-1]: r.key for r in refs}
        job = defs.resolve_job_def("embed_videos")
        results = {
            k: job.execute_in_process(partition_key=k, instance=instance, raise_on_error=False) for k in keys.values()
        }
        yield {"defs": defs, "instance": instance, "keys": keys, "results": results}


@contextmanager
def one_video_run(tmp_path, source, *, extractor: ExtractorResource, sampling: SamplingResource | None = None):
    """``source`` copied into ``tmp_path`` and run once through the four assets in a fresh
    instance: yields ``(defs, ref, result, instance)``."""
    video = tmp_path / source.name
    shutil.copyfile(source, video)
    defs = build_definitions(
        work_dir=str(tmp_path / "work"),
        store_dir=str(tmp_path / "features.zarr"),
        extractor=extractor,
        sampling=sampling,
    )
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        (ref,) = register_videos(instance, defs, [video])
        result = defs.resolve_job_def("embed_videos").execute_in_process(partition_key=ref.key, instance=instance)
        yield defs, ref, result, instance


def test_good_videos_flow_through_all_four_assets(run):
    instance, keys = run["instance"], run["keys"]
    for name in ("clip_a.mp4", "clip_b.mp4"):
        assert run["results"][keys[name]].success
    for asset in ASSETS:
        done = instance.get_materialized_partitions(dg.AssetKey(asset))
        assert {keys["clip_a.mp4"], keys["clip_b.mp4"]} <= done
        assert keys["broken.mp4"] not in done
    ev = instance.get_latest_materialization_event(dg.AssetKey("clip_embeddings"))
    meta = ev.asset_materialization.metadata
    assert meta["feature_shape"].value in ([5, 1, 1280], [6, 1, 1280], [3, 1, 1280])
    assert meta["clips_per_s"].value > 0 and "extractor" in meta


def test_contact_sheet_shows_in_the_dagster_ui(run, tmp_path):
    """The real web UI on this instance: a decoded partition's page offers the contact sheet, and
    the browser decodes the image (Debian's Chromium through Playwright)."""
    from pathlib import Path

    from vid_assets.devtools.net import dagster_webserver

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian chromium not installed (make test installs it)")
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    key = run["keys"]["clip_a.mp4"]
    shots = Path(__file__).resolve().parent.parent / "test-artifacts"
    shots.mkdir(exist_ok=True)
    with dagster_webserver(run["instance"].root_directory, tmp_path) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(f"{base}/assets/decoded_frames?view=partitions&partition={key}")
        page.get_by_text("[Show Markdown]").wait_for(timeout=90_000)
        # the first-visit community dialog can open a moment after the page has drawn (its overlay
        # then swallows the click below): wait a little for it rather than only looking once
        skip = page.get_by_role("button", name="Skip")
        try:
            skip.wait_for(timeout=5_000)
            skip.click()
        except PlaywrightTimeout:
            pass
        page.get_by_text("[Show Markdown]").click()
        img = page.locator("img[src^='data:image/jpeg;base64,']")
        img.first.wait_for(timeout=20_000)
        width, height, complete = img.first.evaluate("e => [e.naturalWidth, e.naturalHeight, e.complete]")
        page.screenshot(path=str(shots / "dagster_contact_sheet.png"))
        browser.close()
    # 16 thumbnails at most, 4 per row, 72 px high; clip_a has 6 sampled frames -> 2 rows
    assert complete and (width, height) == (4 * 96, 2 * 72)


def test_store_contents(run):
    store = run["defs"].resources["feature_store"].store()
    a, b = (store.read_video(run["keys"][n]) for n in ("clip_a.mp4", "clip_b.mp4"))
    assert store.list_videos() == sorted([a.video_id, b.video_id])
    # clip_a: 3.0 s at 2 fps = 6 frames -> 3 clips of 2 frames
    # clip_b: 2.5 s -> 5 frames -> 3 clips (the last one tail-padded)
    assert a.features.shape == (3, 1, 1280) and b.features.shape == (3, 1, 1280)
    for v in (a, b):
        assert v.features.dtype == np.float16
        assert np.isfinite(v.features).all() and v.features.std() > 0
        assert np.all(np.diff(v.timestamps[:, 0]) > 0) and np.all(v.timestamps[:, 1] > v.timestamps[:, 0])
        assert v.attrs["extractor"].startswith("timm/tf_efficientnet_lite0@")
        assert v.attrs["sampling_plan"] == {"mode": "fps", "fps": 2.0, "short_side": 256, "start_s": 0.0, "end_s": None}
        assert v.attrs["frame_resize"].startswith("swscale rgb24 at source size, then bilinear antialiased")
        assert v.attrs["clip_spec"]["frames_per_clip"] == 2
        assert v.attrs["content_hash"] and v.attrs["source"].endswith(".mp4")
    cos = (a.features[0, 0].astype(np.float32) @ b.features[0, 0].astype(np.float32)) / (
        np.linalg.norm(a.features[0, 0].astype(np.float32)) * np.linalg.norm(b.features[0, 0].astype(np.float32))
    )
    assert cos < 0.98  # two different videos give different features


def test_stored_features_equal_the_model_run_by_hand(run):
    """Fidelity: the plan's frames -> hand crop/normalise -> timm model in fp32 == what the store holds."""
    key = run["keys"]["clip_a.mp4"]
    plan = run["defs"].resources["sampling"].config().plan
    source = run["defs"].resources["workspace"].catalog().get(key).uri
    frames = np.stack([f.image for f in iter_frames(source, plan)])
    h, w = frames.shape[1:3]
    top, left = (h - 224) // 2, (w - 224) // 2
    crops = frames[:, top : top + 224, left : left + 224]
    x = (torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5
    # an independent, unmodified timm module with the same weights (the extractor's own copy has
    # its batch norms folded into the convolutions, see extractors/fuse.py)
    import timm

    from vid_assets.extractors.efficientnet import _load_positional, _weights

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    _load_positional(model, torch.load(_weights()[0], map_location="cpu", weights_only=True))
    with torch.no_grad():
        per_frame = model.forward_head(model.forward_features(x), pre_logits=True).numpy()
    expected = per_frame.reshape(3, 2, -1).mean(1)
    stored = run["defs"].resources["feature_store"].store().read_video(key).features[:, 0].astype(np.float32)
    cos = (expected * stored).sum(1) / (np.linalg.norm(expected, axis=1) * np.linalg.norm(stored, axis=1))
    assert cos.min() >= 0.9999, cos


def test_a_run_of_the_whole_chain_leaves_no_intermediates(run):
    """The four assets streamed: nothing of the stored videos is left in the work folder."""
    artifacts = run["defs"].resources["workspace"].artifacts()
    for key in (run["keys"]["clip_a.mp4"], run["keys"]["clip_b.mp4"]):
        assert not any(artifacts.exists(a, key) for a in (FRAMES, CLIPS, EMBEDDINGS))
    assert artifacts.total_bytes() == 0


def test_corrupt_video_fails_only_its_partition_with_a_clear_reason(run):
    instance, key = run["instance"], run["keys"]["broken.mp4"]
    result = run["results"][key]
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    assert [e.step_key for e in failures] == ["video_features"]
    message = failures[0].step_failure_data.user_failure_data.description
    assert "VideoDecodeError: not a readable video container" in message and "broken.mp4" in message
    status = instance.get_status_by_partition(dg.AssetKey("decoded_frames"), [key], videos_partitions)
    assert status[key] == dg.AssetPartitionStatus.FAILED


def test_rematerializing_is_idempotent(run):
    key = run["keys"]["clip_b.mp4"]
    store = run["defs"].resources["feature_store"].store()
    before = store.read_video(key)
    result = run["defs"].resolve_job_def("embed_videos").execute_in_process(partition_key=key, instance=run["instance"])
    assert result.success
    after = store.read_video(key)
    np.testing.assert_array_equal(before.features, after.features)
    assert len(store.list_videos()) == 2


def test_caption_is_embedded_once_per_video(run):
    pytest.importorskip("sentence_transformers")
    store = run["defs"].resources["feature_store"].store()
    a, b = (store.read_video(run["keys"][n]) for n in ("clip_a.mp4", "clip_b.mp4"))
    assert a.caption_embedding.shape == (384,) and a.caption_embedding.dtype == np.float16
    assert a.attrs["caption"] == "a red ball bouncing over a mosaic"
    assert a.attrs["text_model"]["id"].startswith("sentence-transformers/all-MiniLM-L6-v2@")
    assert b.caption_embedding is None and "caption" not in b.attrs


def test_training_view_and_failed_report(run):
    from vid_assets.loader import ClipDataset, VideoDataset

    result = run["defs"].resolve_job_def("build_training_view").execute_in_process(instance=run["instance"])
    assert result.success
    meta = run["instance"].get_latest_materialization_event(dg.AssetKey("training_view")).asset_materialization.metadata
    assert meta["num_videos"].value == 2 and meta["num_rows"].value == 6
    path = run["defs"].resources["feature_store"].training_view_path()
    assert len(VideoDataset(path)) == 2
    assert sum(len(b["index"]) for b in ClipDataset(path, batch_size=4)) == 6
    report = run["defs"].resources["workspace"].catalog().failures()
    assert [r["id"] for r in report] == [run["keys"]["broken.mp4"]]
    assert report[0]["error_class"] == "VideoDecodeError" and "not a readable video container" in report[0]["message"]


def test_publish_sensor_and_hub_asset(run):
    defs, instance = run["defs"], run["instance"]
    sensor = defs.resolve_sensor_def("publish_when_new_videos")
    ctx = dg.build_sensor_context(instance=instance, resources={k: defs.resources[k] for k in ("feature_store", "hub")})
    requests = sensor(ctx)
    assert isinstance(requests, dg.RunRequest)  # 2 stored videos >= publish_every_n_videos=2
    result = defs.resolve_job_def("publish_dataset").execute_in_process(instance=instance)
    assert result.success
    meta = instance.get_latest_materialization_event(dg.AssetKey("hub_dataset")).asset_materialization.metadata
    assert meta["committed"].value is True and meta["num_videos"].value == 2
    assert meta["commit_message"].value.startswith("Add 2 videos (2 total, 6 clips)")
    skip = sensor(
        dg.build_sensor_context(instance=instance, resources={k: defs.resources[k] for k in ("feature_store", "hub")})
    )
    assert isinstance(skip, dg.SkipReason)


def _check_results(result) -> dict[str, bool]:
    return {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def test_asset_checks_pass_then_fail_on_a_planted_nan(run):
    import zarr

    key = run["keys"]["clip_a.mp4"]
    job = run["defs"].resolve_job_def("embed_videos")
    ok = job.execute_in_process(partition_key=key, instance=run["instance"])
    assert _check_results(ok) == {
        "features_finite": True,
        "shape_as_declared": True,
        "timestamps_increasing": True,
        "clip_count_consistent": True,
    }
    decode_meta = (
        run["instance"].get_latest_materialization_event(dg.AssetKey("decoded_frames")).asset_materialization.metadata
    )
    assert decode_meta["contact_sheet"].value.startswith("![contact sheet](data:image/jpeg;base64,")
    assert decode_meta["frames_skipped"].value > 0  # the B-frames far from every sample: dropped undecoded
    # keep the embeddings (a run of clip_embeddings alone), plant a NaN there, then store only that partition
    job.execute_in_process(
        partition_key=key, instance=run["instance"], asset_selection=[dg.AssetKey("clip_embeddings")]
    )
    emb = run["defs"].resources["workspace"].artifacts().path("embeddings", key)
    zarr.open_group(emb, mode="a")["features"][0, 0, 0] = np.nan
    bad = job.execute_in_process(
        partition_key=key,
        instance=run["instance"],
        asset_selection=[dg.AssetKey("stored_features")],
        raise_on_error=False,
    )
    assert _check_results(bad)["features_finite"] is False
    job.execute_in_process(partition_key=key, instance=run["instance"])  # leave the store clean


def test_status_from_materialization_history(run):
    from vid_assets.defs.videos.status import progress

    report = progress(run["instance"], run["defs"].resources["workspace"].catalog())
    assert report["videos"] == 3
    d, s = report["assets"]["decoded_frames"], report["assets"]["stored_features"]
    assert (d["done"], d["failed"], d["missing"]) == (2, 1, 0)
    assert (s["done"], s["failed"], s["missing"]) == (2, 1, 0)  # a failed run marks its planned assets failed
    assert s["videos_per_hour"] and s["videos_per_hour"] > 0
    assert [f["id"] for f in report["failures"]] == [run["keys"]["broken.mp4"]]


def test_config_changes_change_code_versions_so_partitions_go_stale(run, tmp_path):
    from vid_assets.defs.resources import SamplingResource

    def versions(defs):
        graph = defs.resolve_asset_graph()
        return {k.to_user_string(): graph.get(k).code_version for k in graph.get_all_asset_keys()}

    before = versions(run["defs"])
    other = build_definitions(
        work_dir=str(tmp_path), store_dir=str(tmp_path / "s.zarr"), sampling=SamplingResource(fps=1.0)
    )
    after = versions(other)
    assert before["decoded_frames"] != after["decoded_frames"]  # the plan changed
    assert before["clip_tensors"] == after["clip_tensors"] and before["clip_embeddings"] == after["clip_embeddings"]
    # which output of the model is stored is part of the embeddings' version; "auto" keeps the old one
    head = build_definitions(work_dir=str(tmp_path), extractor=ExtractorResource(device="cpu", output="head"))
    auto = build_definitions(work_dir=str(tmp_path), extractor=ExtractorResource(device="cpu", output="auto"))
    assert versions(head)["clip_embeddings"] != before["clip_embeddings"] == versions(auto)["clip_embeddings"]
    # what Dagster compares against: the code version recorded with each materialization
    ev = run["instance"].get_latest_materialization_event(dg.AssetKey("decoded_frames"))
    assert ev.asset_materialization.tags["dagster/code_version"] == before["decoded_frames"]
    emb = run["instance"].get_latest_materialization_event(dg.AssetKey("clip_embeddings"))
    assert len(emb.asset_materialization.tags["dagster/data_version"]) == 16
    # `vid-assets status` counts them: nothing stale under the config that made them; everything
    # done is stale under the new plan (decode's code version changed, the rest inherit it)
    from vid_assets.defs.videos.status import progress

    catalog = run["defs"].resources["workspace"].catalog()
    now = progress(run["instance"], catalog, defs=run["defs"])
    assert [c["stale"] for c in now["assets"].values()] == [0, 0, 0, 0]
    changed = progress(run["instance"], catalog, defs=other)
    assert [(c["done"], c["stale"]) for c in changed["assets"].values()] == [(2, 2)] * 4
    # `make demo` re-materializes what is stale, not only what is missing
    from vid_assets.defs.videos.local_runs import outdated

    good = [run["keys"]["clip_a.mp4"], run["keys"]["clip_b.mp4"]]
    assert outdated(run["instance"], run["defs"], good) == {}
    assert outdated(run["instance"], other, good) == dict.fromkeys(good, "stale")
    assert outdated(run["instance"], run["defs"], [run["keys"]["broken.mp4"]]) == {run["keys"]["broken.mp4"]: "missing"}


def test_batch_run_embeds_many_partitions_with_one_model_load(run):
    """A multi-partition run of clip_embeddings + stored_features (as a backfill launches it)."""
    import json
    import subprocess
    import sys

    keys = [run["keys"]["clip_a.mp4"], run["keys"]["clip_b.mp4"]]
    workspace, store = run["defs"].resources["workspace"], run["defs"].resources["feature_store"]
    script = f"""
import json, dagster as dg
from vid_assets.extractors.registry import loads_so_far
from vid_assets.defs.build import build_definitions
from vid_assets.defs.resources import ExtractorResource
defs = build_definitions(work_dir={workspace.work_dir!r}, store_dir={store.root!r}, extractor=ExtractorResource(device="cpu"))
tags = {{"dagster/asset_partition_range_start": {keys[0]!r}, "dagster/asset_partition_range_end": {keys[1]!r}}}
r = defs.resolve_job_def("embed_batches").execute_in_process(instance=dg.DagsterInstance.get(), tags=tags)
print(json.dumps({{"success": r.success, "loads": loads_so_far(), "run_id": r.run_id}}))
"""
    env = {**os.environ, "DAGSTER_HOME": run["instance"].root_directory}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["success"] and res["loads"] == 1  # one model load for the whole batch
    mats = [
        r
        for r in run["instance"].fetch_materializations(dg.AssetKey("clip_embeddings"), limit=20).records
        if r.run_id == res["run_id"]
    ]
    assert sorted(r.partition_key for r in mats) == sorted(keys)
    logs = [e.message or "" for e in run["instance"].all_logs(res["run_id"])]
    assert sum("loaded extractor" in m for m in logs) == 1
    # the run's engine line: the first video (the model's warm-up) apart from the steady rate after it
    (line,) = [json.loads(m.split("engine: ", 1)[1]) for m in logs if "engine: {" in m]
    assert line["videos"] == 2 and 0 < line["first_video_s"] <= line["seconds"]
    assert line["steady_images_per_s"] > 0
    # the model's own time (its passes, without the waits for decode): within the run's, and a rate
    # at least the run's (on the CPU the passes run on the host, so the two are close, not equal)
    assert 0 < line["model_s"] <= line["seconds"] and line["model_images_per_s"] >= line["images_per_s"]
    assert line["steady_model_images_per_s"] > 0


def test_a_batch_run_gives_each_video_its_own_data_version_checks_and_fresh_provenance(run):
    """Per-video facts whatever the run size: in a run of many partitions each video gets its own
    data version (the one a single-video run gave the same bytes), one result per check naming
    the video, and provenance Dagster's stale resolver (what the UI shows) reads as fresh."""
    from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
    from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
    from dagster._time import get_current_datetime

    instance, keys = run["instance"], [run["keys"]["clip_a.mp4"], run["keys"]["clip_b.mp4"]]
    emb = dg.AssetKey("clip_embeddings")

    def version(key: str) -> str:
        (rec,) = instance.fetch_materializations(dg.AssetRecordsFilter(emb, asset_partitions=[key]), limit=1).records
        return rec.asset_materialization.tags["dagster/data_version"]

    single = {k: version(k) for k in keys}  # from the module's one-video runs
    tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[1]}
    result = run["defs"].resolve_job_def("embed_videos").execute_in_process(instance=instance, tags=tags)
    assert result.success
    assert {k: version(k) for k in keys} == single and single[keys[0]] != single[keys[1]]
    evaluations = [
        e.dagster_event.asset_check_evaluation_data
        for e in instance.all_logs(result.run_id)
        if e.dagster_event and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    assert sorted((e.partition, e.check_name) for e in evaluations) == sorted(
        (k, c)
        for k in keys
        for c in ("features_finite", "shape_as_declared", "timestamps_increasing", "clip_count_consistent")
    )
    assert all(e.passed and e.target_materialization_data is not None for e in evaluations)
    graph = run["defs"].resolve_asset_graph()
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance,
        asset_graph=graph,
    )
    resolver = CachingStaleStatusResolver(instance=instance, asset_graph=graph, loading_context=view)
    assert {(a, k): resolver.get_status(dg.AssetKey(a), k) for a in ASSETS for k in keys} == dict.fromkeys(
        [(a, k) for a in ASSETS for k in keys], StaleStatus.FRESH
    )


def test_prediction_service_runs_the_same_code_path_as_the_assets(run, media_dir):
    """The service's per-clip embeddings equal what the four assets stored for the same video and plan."""
    import httpx
    from httpx_sse import connect_sse

    from vid_assets.serve import Predictor
    from vid_assets.serve.app import create_app
    from vid_assets_tests.serving import running

    defs = run["defs"]
    config = defs.resources["sampling"].config()
    extractor = defs.resources["extractor"].load()
    stored = defs.resources["feature_store"].store().read_video(run["keys"]["clip_a.mp4"])
    with running(create_app(Predictor(extractor, config))) as base, httpx.Client(timeout=60) as c:
        body = (media_dir / "clip_a.mp4").read_bytes()
        with connect_sse(c, "POST", f"{base}/v1/predict?embeddings=1", content=body) as es:
            clips = [e.json() for e in es.iter_sse() if e.event == "clip"]
    assert len(clips) == stored.features.shape[0] == 3
    served = np.asarray([c["embedding"] for c in clips], dtype=np.float32)
    assert served.shape == stored.features.shape  # [clips, crops, D]
    np.testing.assert_allclose(
        [[c["start_s"], c["end_s"]] for c in clips], stored.timestamps, atol=1e-6
    )  # same sampling times
    # the store holds float16: equal up to its rounding
    np.testing.assert_allclose(served, stored.features.astype(np.float32), rtol=2e-3, atol=2e-3)
    a, b = served.reshape(3, -1), stored.features.astype(np.float32).reshape(3, -1)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cos.min() > 0.99999
    labels = defs.resources["extractor"].load().labels
    assert [c["top_k"][0]["label"] for c in clips] == [labels[i] for i in stored.top_labels[:, 0, 0]]


def test_batch_run_with_a_bad_video_fails_only_that_partition_and_resumes_the_rest(tmp_path, media_dir):
    """One run over five partitions (the shape of a backfill / sensor batch) with a corrupt video in
    the middle: the four good videos go all the way to the store in that run, and the bad one is the
    only failed partition."""
    from vid_assets.defs.videos.sensors import RANGE_END, RANGE_START

    videos = tmp_path / "videos"
    videos.mkdir()
    for i in (1, 2, 4, 5):  # distinct bytes, same decodable content
        (videos / f"v{i}.mp4").write_bytes((media_dir / "clip_a.mp4").read_bytes() + bytes([i]))
    shutil.copyfile(media_dir / "not_a_video.mp4", videos / "v3.mp4")
    defs = build_definitions(
        videos_dir=str(videos),
        work_dir=str(tmp_path / "work"),
        store_dir=str(tmp_path / "features.zarr"),
        extractor=ExtractorResource(device="cpu"),
    )
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        keys = [r.key for r in register_videos(instance, defs, sorted(videos.iterdir()))]
        bad = keys[2]
        job = defs.resolve_job_def("embed_videos")
        result = job.execute_in_process(
            instance=instance, tags={RANGE_START: keys[0], RANGE_END: keys[-1]}, raise_on_error=False
        )
        assert not result.success
        status = instance.get_status_by_partition(dg.AssetKey("decoded_frames"), keys, videos_partitions)
        assert {k for k, s in status.items() if s == dg.AssetPartitionStatus.FAILED} == {bad}
        assert {k for k, s in status.items() if s == dg.AssetPartitionStatus.MATERIALIZED} == set(keys) - {bad}
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        assert f"1 of 5 videos failed to decode: {bad}: " in failure.step_failure_data.user_failure_data.description
        assert [f["id"] for f in defs.resources["workspace"].catalog().failures()] == [bad]  # quarantined
        # each good video's own materialization carries its own contact sheet
        mats = instance.fetch_materializations(dg.AssetKey("decoded_frames"), limit=10).records
        assert sorted(r.partition_key for r in mats) == sorted(set(keys) - {bad})
        assert all("contact_sheet" in r.asset_materialization.metadata for r in mats)

        # the same run stored the good videos: nothing is left for the resume sensor to carry
        assert instance.get_materialized_partitions(dg.AssetKey("stored_features")) == set(keys) - {bad}
        assert defs.resources["feature_store"].store().list_videos() == sorted(set(keys) - {bad})
        sensor = next(s for s in defs.sensors if s.name == "resume_after_bad_videos")
        run = instance.get_run_by_id(result.run_id)
        ctx = dg.build_run_status_sensor_context(
            sensor_name=sensor.name,
            dagster_event=failure,
            dagster_instance=instance,
            dagster_run=run,
            resources={"workspace": defs.resources["workspace"]},
        ).for_run_failure()
        assert sensor(ctx) == []

        # an all-good batch: one run through the four assets, each video's own picture on its own
        # materialization (the step's metadata per partition)
        for i, name in ((6, "clip_b.mp4"), (7, "clip_a.mp4")):  # two different pictures
            (videos / f"v{i}.mp4").write_bytes((media_dir / name).read_bytes() + bytes([i]))
        more = [r.key for r in register_videos(instance, defs, [videos / "v6.mp4", videos / "v7.mp4"])]
        batch = job.execute_in_process(instance=instance, tags={RANGE_START: more[0], RANGE_END: more[1]})
        assert batch.success
        assert set(more) <= instance.get_materialized_partitions(dg.AssetKey("stored_features"))
        mats = [
            r
            for r in instance.fetch_materializations(dg.AssetKey("decoded_frames"), limit=10).records
            if r.run_id == batch.run_id
        ]
        assert sorted(r.partition_key for r in mats) == sorted(more)
        sheets = {r.asset_materialization.metadata["contact_sheet"].value for r in mats}
        assert len(sheets) == 2 and all(v.startswith("![contact sheet](data:image/jpeg") for v in sheets)

        # `vid-assets status` over batch runs: counts, the failure with its reason, a sane rate
        from vid_assets.defs.videos.status import progress

        report = progress(instance, defs.resources["workspace"].catalog())
        stored_counts = report["assets"]["stored_features"]
        assert (stored_counts["done"], stored_counts["failed"], stored_counts["missing"]) == (6, 1, 0)
        assert [f["id"] for f in report["failures"]] == [bad] and "VideoDecodeError" in report["failures"][0][
            "error_class"
        ]
        # 6 videos took seconds, not milliseconds: the rate is measured from the runs' start
        assert 0 < stored_counts["videos_per_hour"] < 6 * 3600
        # nothing is stale: the good videos' materializations logged by the failed batch carry the
        # asset's code version like any other
        report = progress(instance, defs.resources["workspace"].catalog(), defs=defs)
        assert {name: c["stale"] for name, c in report["assets"].items()} == dict.fromkeys(report["assets"], 0)


def _embed_job(videos: str, work: str, store: str) -> dg.JobDefinition:
    """The product's batch job, rebuilt by name in a re-execution (``build_reconstructable_job``)."""
    defs = build_definitions(
        videos_dir=videos, work_dir=work, store_dir=store, extractor=ExtractorResource(device="cpu")
    )
    return defs.resolve_job_def("embed_videos")


def test_a_retried_batch_run_does_not_redo_the_videos_it_stored(tmp_path, media_dir):
    """Re-executing a batch run that failed on a bad video leaves the videos its first attempt
    stored as they are (the same files in the store) and runs only the bad one again; the good
    videos' checks, planned again by the retry, are reported from the store."""
    from vid_assets.defs.videos.sensors import RANGE_END, RANGE_START

    videos = tmp_path / "videos"
    videos.mkdir()
    for i in (1, 2, 4):
        (videos / f"v{i}.mp4").write_bytes((media_dir / "clip_a.mp4").read_bytes() + bytes([i]))
    shutil.copyfile(media_dir / "not_a_video.mp4", videos / "v3.mp4")
    args = (str(videos), str(tmp_path / "work"), str(tmp_path / "features.zarr"))
    job = dg.build_reconstructable_job("vid_assets_tests.test_pipeline", "_embed_job", reconstructable_args=args)
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        defs = build_definitions(videos_dir=args[0], work_dir=args[1], store_dir=args[2])
        keys = [r.key for r in register_videos(instance, defs, sorted(videos.iterdir()))]
        bad, good = keys[2], [k for k in keys if k != keys[2]]
        tags = {RANGE_START: keys[0], RANGE_END: keys[-1]}
        with dg.execute_job(job, instance, tags=tags, raise_on_error=False) as first:
            assert not first.success
        store = defs.resources["feature_store"].store()
        stamps = {k: store.stamp(k) for k in good}

        retry = dg.ReexecutionOptions.from_failure(first.run_id, instance)
        with dg.execute_job(job, instance, tags=tags, reexecution_options=retry, raise_on_error=False) as second:
            assert not second.success  # the bad video fails again, and only it
            logs = [e.message for e in second.all_events if e.event_type_value == "ENGINE_EVENT"] + [
                r.user_message for r in instance.all_logs(second.run_id) if not r.is_dagster_event
            ]
            records = [r.dagster_event for r in instance.all_logs(second.run_id) if r.is_dagster_event]
            checks = [e.event_specific_data for e in records if e.event_type_value == "ASSET_CHECK_EVALUATION"]
            mats = [e for e in records if e.event_type_value == "ASSET_MATERIALIZATION"]
        assert instance.get_run_by_id(second.run_id).parent_run_id == first.run_id
        assert any("3 video(s) stored by an earlier attempt of this run: not done again" in m for m in logs)
        engine_line = next(m for m in logs if m and m.startswith("engine: "))
        assert '"videos": 1,' in engine_line  # the engine saw the bad video alone
        assert {k: store.stamp(k) for k in good} == stamps  # not written again
        # restated by the retry (it planned them again), with the first attempt's metadata and versions
        assert sorted((e.asset_key.path[-1], e.partition) for e in mats) == sorted((a, k) for a in ASSETS for k in good)
        first_mats = {
            (r.asset_key.path[-1], r.partition_key): r.asset_materialization
            for a in ASSETS
            for r in instance.fetch_materializations(dg.AssetKey(a), limit=10).records
            if r.run_id == first.run_id
        }
        for e in mats:
            before = first_mats[(e.asset_key.path[-1], e.partition)]
            assert e.step_materialization_data.materialization.metadata == before.metadata
            assert e.step_materialization_data.materialization.tags[DATA_VERSION_TAG] == before.tags[DATA_VERSION_TAG]
        assert {(c.partition, c.check_name) for c in checks if c.passed} == {
            (k, n)
            for k in good
            for n in ("features_finite", "shape_as_declared", "timestamps_increasing", "clip_count_consistent")
        }
        status = instance.get_status_by_partition(dg.AssetKey("stored_features"), keys, videos_partitions)
        assert {k for k, s in status.items() if s == dg.AssetPartitionStatus.MATERIALIZED} == set(good)
        assert status[bad] == dg.AssetPartitionStatus.FAILED


def test_a_batch_run_reports_each_video_while_the_run_goes_on(tmp_path, media_dir, monkeypatch):
    """A video of a batch run shows as materialized, checks and all, as soon as it is stored, not
    when the run's last video is: the short first video's events are in the event log before the
    run's engine line, which is written after the long second video."""
    from vid_assets.defs.videos.sensors import RANGE_END, RANGE_START
    from vid_assets.samples import write_synthetic_video

    monkeypatch.setenv("VID_ASSETS_REPORT_EVERY_S", "0")
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copyfile(media_dir / "clip_a.mp4", videos / "a_short.mp4")
    write_synthetic_video(videos / "b_long.mp4", seconds=40.0, fps=8, size=(160, 120), seed=5)
    defs = build_definitions(
        work_dir=str(tmp_path / "work"),
        store_dir=str(tmp_path / "features.zarr"),
        extractor=ExtractorResource(device="cpu"),
        sampling=SamplingResource(fps=4.0),
    )
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        short, long = (r.key for r in register_videos(instance, defs, sorted(videos.iterdir())))
        result = defs.resolve_job_def("embed_videos").execute_in_process(
            instance=instance, tags={RANGE_START: short, RANGE_END: long}
        )
        assert result.success
        records = instance.get_records_for_run(result.run_id, limit=10_000).records
        engine_line = next(r.storage_id for r in records if "engine: {" in (r.event_log_entry.user_message or ""))
        told = {}
        for r in records:
            event = r.event_log_entry.dagster_event
            if event is not None and event.event_type_value in ("ASSET_MATERIALIZATION", "ASSET_CHECK_EVALUATION"):
                check = event.event_type_value == "ASSET_CHECK_EVALUATION"
                video = event.asset_check_evaluation_data.partition if check else event.partition
                told.setdefault(video, []).append((event.event_type_value, r.storage_id))
        assert sorted(kind for kind, _ in told[short]) == ["ASSET_CHECK_EVALUATION"] * 4 + ["ASSET_MATERIALIZATION"] * 4
        assert max(i for _, i in told[short]) < engine_line  # before the run's last video was done
        assert len(told[long]) == 8
        assert instance.get_materialized_partitions(dg.AssetKey("stored_features")) == {short, long}


def test_status_cli_as_a_user_runs_it(run):
    """`vid-assets status` (and `--json`) in a subprocess, on the instance and folders of the run."""
    import json
    import subprocess
    import sys

    workspace, store = run["defs"].resources["workspace"], run["defs"].resources["feature_store"]
    env = {
        **os.environ,
        "DAGSTER_HOME": run["instance"].root_directory,
        "VID_ASSETS_WORK": workspace.work_dir,
        "VID_ASSETS_STORE": store.root,
    }
    cmd = [sys.executable, "-m", "vid_assets.cli", "status"]
    out = subprocess.run([*cmd, "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    stored = report["assets"]["stored_features"]
    assert (stored["done"], stored["stale"], stored["failed"], stored["missing"]) == (2, 0, 1, 0)
    assert report["failures"][0]["id"] == run["keys"]["broken.mp4"]
    table = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert table.returncode == 0 and "stale" in table.stdout and "VideoDecodeError" in table.stdout


def test_a_video_model_gets_frames_and_clips_that_fit_it_with_no_sampling_config(tmp_path, media_dir, monkeypatch):
    """Only the extractor is named (a user's factory wrapping torchvision's mc3_18, random init):
    decode resizes to its 128-px short side and the clips hold its 16 frames at 112 px, so the
    embeddings step gets what the model takes (with the old fixed 2-frame clips it failed)."""
    from vid_assets.defs.resources import SamplingResource

    (tmp_path / "acme_video.py").write_text(
        "from vid_assets.extractors import create_extractor\n"
        "def mc3(**kw):\n    return create_extractor('tv:mc3_18', weights=None, **kw)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    mc3 = ExtractorResource(name="acme_video:mc3", device="cpu")
    with one_video_run(tmp_path, media_dir / "clip_a.mp4", extractor=mc3, sampling=SamplingResource(fps=8.0)) as run:
        defs, ref, result, _ = run
        assert result.success
    v = defs.resources["feature_store"].store().read_video(ref.key)
    # 3.0 s at 8 fps = 24 frames -> clips of 16 frames starting every 16: 2 (the last tail-padded)
    assert v.features.shape == (2, 1, 512)
    assert (v.attrs["clip_spec"]["frames_per_clip"], v.attrs["clip_spec"]["stride"]) == (16, 16)
    assert v.attrs["clip_spec"]["crop_size"] == 112 and v.attrs["sampling_plan"]["short_side"] == 128
    assert v.timestamps[1, 0] == pytest.approx(2.0, abs=0.07) and np.isfinite(v.features).all()


def test_sampling_fields_left_at_zero_fit_the_model_and_set_ones_win():
    from vid_assets.defs.resources import SamplingResource
    from vid_assets.extractors import InputSpec

    def sizes(cfg):
        return cfg.plan.short_side, cfg.clip.frames_per_clip, cfg.clip.stride, cfg.clip.crop_size

    video = InputSpec("clip", 16, 112, 128)
    assert sizes(SamplingResource().config(video)) == (128, 16, 16, 112)
    # stride follows the chosen clip length; the short side is never below the crop
    assert sizes(SamplingResource(frames_per_clip=4, crop_size=160).config(video)) == (160, 4, 4, 160)
    assert sizes(SamplingResource().config()) == (256, 2, 2, 224)  # the default extractor's declared spec
    with pytest.raises(ValueError, match="crop_size must be >= 16"):
        SamplingResource(crop_size=8).config(video)


def test_loading_definitions_never_builds_an_undeclared_model(tmp_path, monkeypatch):
    """Every step process and the code server load the definitions: a factory that declares no
    input spec is versioned by its name there, not built to ask (it is built, once, by the steps
    that fit clips to it)."""
    import importlib

    (tmp_path / "acme_counted.py").write_text(
        "from vid_assets.extractors import create_extractor\nCALLS = []\n"
        "def mc3(**kw):\n    CALLS.append(kw)\n    return create_extractor('tv:mc3_18', weights=None, **kw)\n"
        "def mc3_copy(**kw):\n    return mc3(**kw)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    def versions(name):
        defs = build_definitions(work_dir=str(tmp_path), extractor=ExtractorResource(name=name))
        graph = defs.resolve_asset_graph()
        return {k.to_user_string(): graph.get(k).code_version for k in graph.get_all_asset_keys()}

    one, other = versions("acme_counted:mc3"), versions("acme_counted:mc3_copy")
    assert importlib.import_module("acme_counted").CALLS == []
    assert one["decoded_frames"] != other["decoded_frames"] and one["clip_tensors"] != other["clip_tensors"]


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("efficientnet_lite0", []),  # declared constants: nothing to import
        ("r3d_18", []),
        ("timm:vit_tiny_patch16_224", ["vid_assets.extractors.timm_import"]),  # the spec reads timm's pretrained cfg
        ("local-dir:/models/mine", ["vid_assets.extractors.timm_import"]),
        ("tv:resnet18", ["vid_assets.extractors.tv_import"]),  # torchvision's weight transforms, without Dynamo
    ],
)
def test_the_forkserver_imports_what_the_models_input_spec_needs_once_per_run(tmp_path, name, extra, monkeypatch):
    """Every step process loads the definitions, whose code versions hold the model's fitted sizes:
    the forkserver imports what answering that needs, so the steps fork with it already loaded
    (benchmarks/step_imports.py: a timm model's run 48.9 -> 37.5 s)."""
    monkeypatch.setenv("VID_ASSETS_EXECUTOR", "multiprocess")
    defs = build_definitions(work_dir=str(tmp_path), extractor=ExtractorResource(name=name))
    config = defs.executor.apply_config_mapping({}).value["config"]["start_method"]
    assert config == {"forkserver": {"preload_modules": ["vid_assets.defs.build", *extra]}}
    pinned = build_definitions(
        work_dir=str(tmp_path),
        extractor=ExtractorResource(name=name),
        sampling=SamplingResource(short_side=256, frames_per_clip=2, stride=2, crop_size=224),
    )  # nothing fitted: the versions need no spec
    assert pinned.executor.apply_config_mapping({}).value["config"]["start_method"]["forkserver"] == {
        "preload_modules": ["vid_assets.defs.build"]
    }


def test_a_clip_tower_stores_image_text_embeddings_through_dagster(tmp_path, media_dir):
    """Naming a CLIP image tower is all a run needs: frames fitted to its 64-px input, features are
    its projected image embeddings (timm's own forward, by hand), and no meaningless top-k is stored."""
    from vid_assets_tests.helpers import TINY_VIT, normalised, save_tiny_timm

    model = save_tiny_timm(tmp_path / "tiny_clip", "vit_base_patch32_clip_224.openai", **TINY_VIT)
    tower = ExtractorResource(name=f"local-dir:{tmp_path / 'tiny_clip'}", device="cpu")
    with one_video_run(tmp_path, media_dir / "clip_a.mp4", extractor=tower) as (defs, ref, result, _):
        assert result.success
    v = defs.resources["feature_store"].store().read_video(ref.key)
    assert v.features.shape == (3, 1, 512) and v.top_labels is None and v.attrs["label_set"] is None
    assert v.segments is None  # an fps plan has no segments
    assert v.attrs["extractor_config"]["output"] == "head" and v.attrs["clip_spec"]["crop_size"] == 64
    plan = defs.resources["sampling"].config(tower).plan
    frames = np.stack([f.image for f in iter_frames(ref.uri, plan)])
    top, left = (frames.shape[1] - 64) // 2, (frames.shape[2] - 64) // 2
    x = normalised(
        frames[:, top : top + 64, left : left + 64], model.pretrained_cfg["mean"], model.pretrained_cfg["std"]
    )
    with torch.no_grad():
        expected = model(x).numpy().reshape(3, 2, -1).mean(1)
    stored = v.features[:, 0].astype(np.float32)
    cos = (expected * stored).sum(1) / (np.linalg.norm(expected, axis=1) * np.linalg.norm(stored, axis=1))
    assert cos.min() >= 0.9999, cos


def test_a_head_of_more_classes_than_int16_holds_keeps_its_label_indices(tmp_path, media_dir, monkeypatch):
    """Top-k indices were stored as int16 whatever the head: class 39,999 of a 40k-way tagger came
    back as -25,537. A user's factory (module:callable) with such a head, through Dagster."""
    (tmp_path / "acme_tags.py").write_text(
        "import torch\n"
        "from vid_assets.extractors import Extractor\n"
        "def tagger(**kw):\n"
        "    backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 4, stride=4), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())\n"
        "    head = torch.nn.Linear(8, 40000)\n"
        "    with torch.no_grad():\n"
        "        head.weight.zero_(); head.bias.zero_(); head.bias[39999] = 10.0\n"
        "    return Extractor(name='tagger', id='acme/tagger@1', model=backbone, head=head, input_size=32,\n"
        "                     mean=(0.5,) * 3, std=(0.5,) * 3, dim=8, labels=[f'tag{i}' for i in range(40000)], **kw)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    tagger = ExtractorResource(name="acme_tags:tagger", device="cpu")
    with one_video_run(tmp_path, media_dir / "clip_b.mp4", extractor=tagger) as (defs, ref, result, instance):
        assert result.success
        stored = instance.get_latest_materialization_event(dg.AssetKey("stored_features")).asset_materialization
    store = defs.resources["feature_store"].store()
    v = store.read_video(ref.key)
    assert v.top_labels.dtype == np.int32 and (v.top_labels[:, :, 0] == 39999).all()
    assert stored.metadata["first_clip_top1"].value == "tag39999"
    # the 40k names are kept once in the store, named by their hash; a video's attrs only name the set
    assert [p.name for p in store.label_sets_dir.iterdir()] == [f"{v.attrs['label_set']}.json"]
    assert store.label_names(v.attrs["label_set"])[39999] == "tag39999"
    assert (store.video_path(ref.key) / "zarr.json").stat().st_size < 20_000


@pytest.mark.parametrize(("frames_per_clip", "per_segment"), [(0, 1), (2, 2), (1, 3)])
def test_a_segments_plan_gives_clips_inside_segments_through_dagster(tmp_path, media_dir, frames_per_clip, per_segment):
    """A 3-s video, 1-s segments of 3 frames, 2 of them spread (segments 0 and 2): with the clip
    length left to fit, each segment is one clip; with 2-frame clips, each segment gives a clip and
    its own padded tail. No clip mixes frames of the two segments (random crops on), and the
    clip-count check expects exactly this."""
    sampling = SamplingResource(
        mode="segments",
        segment_s=1.0,
        frames_per_segment=3,
        max_segments=2,
        frames_per_clip=frames_per_clip,
        crop="random",
        seed=11,
    )
    effnet = ExtractorResource(device="cpu")
    with one_video_run(tmp_path, media_dir / "clip_a.mp4", extractor=effnet, sampling=sampling) as run:
        defs, ref, result, instance = run
        assert result.success and _check_results(result)["clip_count_consistent"] is True
        v = defs.resources["feature_store"].store().read_video(ref.key)
        assert v.features.shape == (2 * per_segment, 1, 1280) and np.isfinite(v.features).all()
        for clip, frame_times in enumerate(v.frame_times):
            segment = 0 if clip < per_segment else 2  # segment 2 starts at 2.0 s
            assert ((frame_times >= segment) & (frame_times < segment + 1)).all(), (clip, frame_times)
        assert v.attrs["clip_spec"]["frames_per_clip"] == (frames_per_clip or 3)
        plan = defs.resources["sampling"].config(effnet).plan
        assert [f.segment for f in iter_frames(ref.uri, plan, convert=False)] == [0, 0, 0, 2, 2, 2]
        assert v.segments.tolist() == [0] * per_segment + [2] * per_segment  # stored with the features
        if frames_per_clip == 1:  # the seed notes' layout: per-frame features grouped by segment
            from vid_assets.loader import SegmentDataset

            assert defs.resolve_job_def("build_training_view").execute_in_process(instance=instance).success
            view = defs.resources["feature_store"].training_view_path()
            (batch,) = SegmentDataset(view, batch_size=8, shuffle=False)
            assert batch["features"].shape == (2, 3, 1, 1280) and batch["segment"].tolist() == [0, 2]
            np.testing.assert_array_equal(batch["features"].numpy().reshape(6, 1, 1280), v.features)


def test_a_transformers_clip_checkpoint_embeds_clips_and_their_caption_through_dagster(tmp_path, media_dir):
    """The CLIP retrieval set-up a user writes in the resource config: one transformers checkpoint
    as the extractor (``transformers:<folder>``) and as the ``text_model``. The stored clip
    features are its projected image embeddings and the caption embedding is its text tower's, so
    the two compare as CLIP compares them."""
    from vid_assets.extractors.text import create_text_embedder
    from vid_assets_tests.helpers import save_tiny_clip

    folder = tmp_path / "tiny-clip"
    save_tiny_clip(folder)
    shutil.copyfile(media_dir / "clip_a.mp4", tmp_path / "clip_a.mp4")
    defs = build_definitions(
        work_dir=str(tmp_path / "work"),
        store_dir=str(tmp_path / "features.zarr"),
        extractor=ExtractorResource(name=f"transformers:{folder}", text_model=str(folder), device="cpu"),
    )
    (tmp_path / "home").mkdir()
    caption = "a red ball bouncing over a mosaic"
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        (ref,) = register_videos(instance, defs, [tmp_path / "clip_a.mp4"])
        defs.resources["workspace"].catalog().register(VideoRef.from_path(tmp_path / "clip_a.mp4", caption=caption))
        assert defs.resolve_job_def("embed_videos").execute_in_process(partition_key=ref.key, instance=instance).success
    v = defs.resources["feature_store"].store().read_video(ref.key)
    assert v.features.shape[1:] == (1, 24) and v.top_labels is None  # the projection, no labels
    assert v.attrs["extractor"].startswith("transformers:tiny-clip@") and v.attrs["clip_spec"]["crop_size"] == 64
    want = create_text_embedder(str(folder)).embed([caption])[0]
    np.testing.assert_allclose(v.caption_embedding.astype(np.float32), want, atol=2e-3)  # float16 in the store
