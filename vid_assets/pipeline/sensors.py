"""Folder sensor: new video files become partitions plus one run request each.

The cursor remembers each file's ``size:mtime_ns`` fingerprint (zlib+base64 JSON), so unchanged
files are skipped without re-hashing, while files moved in with an old mtime are still seen. A file
whose content hash already names a partition (renamed/moved copy) adds nothing.
"""

import base64
import json
import os
import zlib

import dagster as dg

from vid_assets import settings
from vid_assets.media import VideoRef, scan_folder
from vid_assets.media.source import read_manifest, scan_prefix
from vid_assets.pipeline.assets import embed_videos_job
from vid_assets.pipeline.partitions import videos_partitions
from vid_assets.pipeline.resources import WorkspaceResource

MAX_NEW_PER_TICK = 500


def encode_cursor(seen: dict[str, str]) -> str:
    return base64.b64encode(zlib.compress(json.dumps(seen, sort_keys=True).encode())).decode()


def decode_cursor(cursor: str | None) -> dict[str, str]:
    if not cursor:
        return {}
    return json.loads(zlib.decompress(base64.b64decode(cursor)))


def discover(sources: list[str], manifests: list[str]) -> dict[str, tuple[str, dict]]:
    """Every candidate video: ``{cursor id: (fingerprint, {uri, id, caption})}``.

    Folders are walked (size:mtime), fsspec prefixes listed (size:mtime/etag), manifests read (a row's
    fingerprint is the row itself, so an edited caption or id is picked up).
    """
    found: dict[str, tuple[str, dict]] = {}
    for src in sources:
        if "://" in src and not src.startswith("file://"):
            for uri, fp in scan_prefix(src):
                found[uri] = (fp, {"uri": uri, "id": None, "caption": None})
            continue
        for path, mtime_ns in scan_folder(src.removeprefix("file://")):
            try:
                fp = f"{path.stat().st_size}:{mtime_ns}"
            except FileNotFoundError:
                continue
            found[str(path)] = (fp, {"uri": str(path), "id": None, "caption": None})
    for manifest in manifests:
        for row in read_manifest(manifest):
            found[f"{manifest}#{row['uri']}"] = (json.dumps(row, sort_keys=True), row)
    return found


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def build_videos_sensor(
    videos_dir: str | None = None,
    *,
    manifests: list[str] | None = None,
    minimum_interval_seconds: int = 30,
    max_new_per_tick: int = MAX_NEW_PER_TICK,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    """``videos_dir``: one or more folders / fsspec prefixes, comma-separated (default
    ``$VID_ASSETS_VIDEOS``); ``manifests``: CSV/JSONL/Parquet files with ``uri, id, caption``
    (default ``$VID_ASSETS_MANIFESTS``, comma-separated)."""
    sources = _split(videos_dir or settings.videos_dir())
    manifest_list = manifests if manifests is not None else _split(os.environ.get("VID_ASSETS_MANIFESTS"))
    described = ", ".join(sources + manifest_list)

    @dg.sensor(
        name="new_videos_sensor",
        job=embed_videos_job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=f"Registers new videos from {described} as partitions and requests their runs.",
    )
    def new_videos_sensor(context: dg.SensorEvaluationContext, workspace: WorkspaceResource) -> dg.SensorResult:
        seen = decode_cursor(context.cursor)
        present: dict[str, str] = {}
        changed: list[tuple[str, dict]] = []
        for cid, (fp, row) in discover(sources, manifest_list).items():
            present[cid] = fp
            if seen.get(cid) != fp:
                changed.append((cid, row))
        catalog = workspace.catalog()
        existing = set(context.instance.get_dynamic_partitions(videos_partitions.name))
        # quarantine: a key names exact bytes, so a recorded failure means these bytes already failed;
        # they are requested again only when the file changes (which gives a new key)
        quarantined = {f["id"] for f in catalog.failures()}
        new_keys: list[str] = []
        for cid, _row in changed[max_new_per_tick:]:  # look again next tick
            present.pop(cid, None)
        for cid, row in changed[:max_new_per_tick]:
            try:
                ref = VideoRef.from_uri(row["uri"], caption=row.get("caption"), id=row.get("id"))
            except (OSError, ValueError) as e:  # vanished, unreadable, unreachable
                context.log.warning(f"skipping {row['uri']}: {e}")
                present.pop(cid, None)
                continue
            ref = catalog.register(ref)  # a moved/renamed file keeps its first key
            if ref.key in quarantined:
                context.log.info(f"{ref.key} is quarantined (its decode failed before): not requested")
            elif ref.key not in existing and ref.key not in new_keys:
                new_keys.append(ref.key)
        if new_keys:
            context.log.info(f"{len(new_keys)} new video(s): {', '.join(new_keys[:10])}")
        return dg.SensorResult(
            run_requests=[dg.RunRequest(partition_key=k, run_key=k) for k in new_keys],
            dynamic_partitions_requests=[videos_partitions.build_add_request(new_keys)] if new_keys else [],
            cursor=encode_cursor(present),
            skip_reason=None if new_keys else f"no new videos in {described}",
        )

    return new_videos_sensor


def build_publish_sensor(
    *, minimum_interval_seconds: int = 300, default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED
) -> dg.SensorDefinition:
    """Publish when ``hub.publish_every_n_videos`` videos were stored since the last publish.

    Publishing reads only committed video groups (writes become visible by one rename), so a run
    started while other partitions are still being written publishes a consistent snapshot.
    """
    from vid_assets.pipeline.assets import publish_job
    from vid_assets.pipeline.resources import FeatureStoreResource, HubResource

    @dg.sensor(
        name="publish_when_new_videos",
        job=publish_job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Requests a publish run once N new videos are in the feature store.",
    )
    def publish_when_new_videos(
        context: dg.SensorEvaluationContext, feature_store: FeatureStoreResource, hub: HubResource
    ):
        stored = len(feature_store.store().list_videos())
        event = context.instance.get_latest_materialization_event(dg.AssetKey("hub_dataset"))
        published = 0
        if event is not None and event.asset_materialization is not None:
            entry = event.asset_materialization.metadata.get("num_videos")
            published = int(entry.value) if entry is not None else 0
        waiting = stored - published
        if waiting < hub.publish_every_n_videos:
            return dg.SkipReason(f"{waiting} new video(s) since the last publish (< {hub.publish_every_n_videos})")
        return dg.RunRequest(run_key=f"publish-{stored}", tags={"vid_assets/new_videos": str(waiting)})

    return publish_when_new_videos
