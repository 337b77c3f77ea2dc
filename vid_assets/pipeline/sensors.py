"""Folder sensor: new video files become partitions plus one run request each.

The cursor remembers each file's ``size:mtime_ns`` fingerprint (zlib+base64 JSON), so unchanged
files are skipped without re-hashing, while files moved in with an old mtime are still seen. A file
whose content hash already names a partition (renamed/moved copy) adds nothing.
"""

import base64
import json
import os
import zlib
from pathlib import Path

import dagster as dg

from vid_assets import settings
from vid_assets.media import VideoRef, scan_folder
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


def build_videos_sensor(
    videos_dir: str | None = None,
    *,
    minimum_interval_seconds: int = 30,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    folder = videos_dir or settings.videos_dir()

    @dg.sensor(
        name="new_videos_sensor",
        job=embed_videos_job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=f"Registers new video files under {folder} as partitions and requests their runs.",
    )
    def new_videos_sensor(context: dg.SensorEvaluationContext, workspace: WorkspaceResource) -> dg.SensorResult:
        seen = decode_cursor(context.cursor)
        root = Path(folder)
        present: dict[str, str] = {}
        changed: list[Path] = []
        for path, mtime_ns in scan_folder(root):
            rel = os.path.relpath(path, root)
            fp = f"{path.stat().st_size}:{mtime_ns}"
            present[rel] = fp
            if seen.get(rel) != fp:
                changed.append(path)
        deferred = changed[MAX_NEW_PER_TICK:]
        catalog = workspace.catalog()
        existing = set(context.instance.get_dynamic_partitions(videos_partitions.name))
        new_keys: list[str] = []
        for path in changed[:MAX_NEW_PER_TICK]:
            try:
                ref = VideoRef.from_path(path)
            except OSError as e:  # vanished or unreadable between scan and hash
                context.log.warning(f"skipping {path}: {e}")
                present.pop(os.path.relpath(path, root), None)
                continue
            ref = catalog.register(ref)  # a moved/renamed file keeps its first key
            if ref.key not in existing and ref.key not in new_keys:
                new_keys.append(ref.key)
        for path in deferred:  # look again next tick
            present.pop(os.path.relpath(path, root), None)
        if new_keys:
            context.log.info(f"{len(new_keys)} new video(s): {', '.join(new_keys[:10])}")
        return dg.SensorResult(
            run_requests=[dg.RunRequest(partition_key=k, run_key=k) for k in new_keys],
            dynamic_partitions_requests=[videos_partitions.build_add_request(new_keys)] if new_keys else [],
            cursor=encode_cursor(present),
            skip_reason=None if new_keys else f"no new videos in {folder}",
        )

    return new_videos_sensor
