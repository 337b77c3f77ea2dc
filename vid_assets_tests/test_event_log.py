"""The project's SQLite event log (dagster.yaml) against Dagster's stock one, on the same batch run."""

import shutil
from pathlib import Path

import dagster as dg
import yaml

from vid_assets.defs.build import build_definitions
from vid_assets.defs.resources import ExtractorResource
from vid_assets.defs.videos.assets import CHECKS
from vid_assets.defs.videos.sensors import RANGE_END, RANGE_START
from vid_assets.demo import register_videos
from vid_assets.instance.event_log import BatchingSqliteEventLogStorage

REPO = Path(__file__).resolve().parents[1]
ASSETS = ["decoded_frames", "clip_tensors", "clip_embeddings", "stored_features"]


def _history(instance: dg.DagsterInstance, keys: list[str]) -> dict:
    """What the UI reads: per asset and partition, the latest materialization's metadata keys and
    version tags; run status; how many events each kind."""
    out: dict = {}
    for asset in ASSETS:
        records = instance.fetch_materializations(dg.AssetKey(asset), limit=100).records
        latest = {r.partition_key: r for r in reversed(records)}
        out[asset] = {
            k: (
                sorted(latest[k].asset_materialization.metadata),
                {t: v for t, v in latest[k].asset_materialization.tags.items() if "version" in t},
            )
            for k in keys
        }
        status = instance.get_status_by_partition(dg.AssetKey(asset), keys, _partitions())
        out[f"{asset}_status"] = sorted(str(s) for s in status.values())
    # each check's result per video, on the row its planned check made, pointing at the video's
    # materialization (the UI's check history)
    stored = {
        r.partition_key: r.storage_id
        for r in instance.fetch_materializations(dg.AssetKey("stored_features"), limit=100).records
    }
    for check in ("features_finite", "shape_as_declared", "timestamps_increasing", "clip_count_consistent"):
        key = dg.AssetCheckKey(dg.AssetKey("stored_features"), check)
        history = instance.event_log_storage.get_asset_check_execution_history(key, limit=100)
        out[check] = sorted(
            (
                h.partition,
                h.status.value,
                h.event.dagster_event.event_type_value,
                h.event.dagster_event.event_specific_data.target_materialization_data.storage_id == stored[h.partition],
            )
            for h in history
        )
    (run,) = instance.get_run_records()
    counts: dict = {}
    for e in instance.all_logs(run.dagster_run.run_id):
        if e.dagster_event:  # (user log lines differ: the model is loaded once per process)
            kind = e.dagster_event.event_type_value
            counts[kind] = counts.get(kind, 0) + 1
    out["events"] = counts
    out["run"] = str(run.dagster_run.status)
    return out


def _partitions():
    from vid_assets.defs.videos.partitions import videos_partitions

    return videos_partitions


def _home(tmp_path: Path, name: str) -> Path:
    """A Dagster home with the project's dagster.yaml, or (``stock``) without its storage block."""
    home = tmp_path / name
    home.mkdir()
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    if name == "stock":
        config.pop("storage")
    else:
        config["storage"]["custom"]["config"]["base_dir"] = str(home)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


def _defs(videos: Path, home: Path) -> dg.Definitions:
    return build_definitions(
        videos_dir=str(videos),
        work_dir=str(home / "work"),
        store_dir=str(home / "features.zarr"),
        extractor=ExtractorResource(device="cpu"),
    )


def test_batched_asset_events_read_back_as_the_stock_storage_writes_them(tmp_path, media_dir, monkeypatch):
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(3):
        (videos / f"v{i}.mp4").write_bytes((media_dir / "clip_a.mp4").read_bytes() + bytes([i]))
    seen = {}
    for name in ("stock", "project"):
        home = _home(tmp_path, name)
        defs = _defs(videos, home)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            is_project = isinstance(instance.event_log_storage, BatchingSqliteEventLogStorage)
            assert is_project == (name == "project")
            keys = [r.key for r in register_videos(instance, defs, sorted(videos.iterdir()))]
            result = defs.resolve_job_def("embed_videos").execute_in_process(
                instance=instance, tags={RANGE_START: keys[0], RANGE_END: keys[-1]}
            )
            assert result.success
            seen[name] = _history(instance, keys)
        shutil.rmtree(home / "work", ignore_errors=True)
    assert seen["project"]["stored_features"][keys[0]][0]  # per-video metadata is there
    assert seen["project"]["events"]["ASSET_MATERIALIZATION"] == 4 * 3
    assert seen["project"]["features_finite"] == [
        (k, "SUCCEEDED", "ASSET_CHECK_EVALUATION", True) for k in sorted(keys)
    ]
    assert seen["project"] == seen["stock"]


def test_a_many_video_run_plans_its_checks_as_the_stock_storage_does(tmp_path, media_dir):
    """A run's planned checks: one row per check and video, holding the planning event (the
    project writes them in one statement with the event serialized once)."""
    from dagster._core.execution.api import create_execution_plan

    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(40):
        (videos / f"v{i:02d}.mp4").write_bytes((media_dir / "clip_a.mp4").read_bytes() + bytes([i]))
    seen = {}
    for name in ("stock", "project"):
        home = _home(tmp_path, name)
        defs = _defs(videos, home)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            keys = [r.key for r in register_videos(instance, defs, sorted(videos.iterdir()))]
            job = defs.resolve_job_def("embed_videos")
            tags = {RANGE_START: min(keys), RANGE_END: max(keys)}
            plan = create_execution_plan(job, tags=tags, instance_ref=instance.get_ref())
            run = instance.create_run_for_job(job_def=job, execution_plan=plan, tags=tags)
            rows = {}
            for check in CHECKS:
                key = dg.AssetCheckKey(dg.AssetKey("stored_features"), check)
                history = instance.event_log_storage.get_asset_check_execution_history(key, limit=1000)
                rows[check] = sorted(
                    (
                        h.partition,
                        h.status.value,
                        h.run_id == run.run_id,
                        h.event.dagster_event.event_type_value,
                        h.event.dagster_event.event_specific_data,
                        h.event.dagster_event.message,
                    )
                    for h in history
                )
            seen[name] = rows
    assert [r[:4] for r in seen["project"]["features_finite"]] == [
        (k, "PLANNED", True, "ASSET_CHECK_EVALUATION_PLANNED") for k in sorted(keys)
    ]
    assert seen["project"] == seen["stock"]
