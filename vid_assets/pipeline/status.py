"""Progress from Dagster's materialization history (the progress tracker), via public instance APIs."""

from __future__ import annotations

import time

import dagster as dg

from vid_assets.pipeline.partitions import videos_partitions

PER_VIDEO_ASSETS = ("decoded_frames", "clip_tensors", "clip_embeddings", "stored_features")


def _rate(instance: dg.DagsterInstance, records, times: list[float]) -> float | None:
    """Videos per second over the recent materializations, measured from the start of the run that
    produced the oldest of them: batch runs report a whole batch within milliseconds, so the spread
    of the timestamps alone would overstate the rate."""
    if not times:
        return None
    oldest = min(records, key=lambda r: r.timestamp)
    run = instance.get_run_record_by_id(oldest.run_id) if oldest.run_id else None
    start = run.start_time if run is not None and run.start_time else times[0]
    span = times[-1] - start
    if span <= 0 or (len(times) < 2 and start == times[0]):
        return None
    return len(times) / span


def progress(instance: dg.DagsterInstance, catalog=None, recent: int = 200) -> dict:
    """Per asset: done / failed / in progress / missing counts; throughput and ETA; latest failures."""
    keys = instance.get_dynamic_partitions(videos_partitions.name)
    out: dict = {"videos": len(keys), "assets": {}}
    for name in PER_VIDEO_ASSETS:
        ak = dg.AssetKey(name)
        status = instance.get_status_by_partition(ak, keys, videos_partitions) or {}
        counts = {"done": 0, "failed": 0, "in_progress": 0, "missing": 0}
        for k in keys:
            s = status.get(k)
            if s == dg.AssetPartitionStatus.MATERIALIZED:
                counts["done"] += 1
            elif s == dg.AssetPartitionStatus.FAILED:
                counts["failed"] += 1
            elif s == dg.AssetPartitionStatus.IN_PROGRESS:
                counts["in_progress"] += 1
            else:
                counts["missing"] += 1
        records = [r for r in instance.fetch_materializations(ak, limit=recent).records if r.timestamp is not None]
        times = sorted(r.timestamp for r in records)
        rate = _rate(instance, records, times)
        todo = counts["missing"] + counts["in_progress"]
        counts["videos_per_hour"] = round(rate * 3600, 1) if rate else None
        counts["eta_s"] = round(todo / rate) if rate and todo else (0 if not todo else None)
        counts["last_materialized"] = times[-1] if times else None
        out["assets"][name] = counts
    out["failures"] = sorted(catalog.failures(), key=lambda f: f["time"], reverse=True)[:10] if catalog else []
    out["generated_at"] = time.time()
    return out
