"""Progress from Dagster's materialization history (the progress tracker), via public instance APIs."""

from __future__ import annotations

import time

import dagster as dg

from vid_assets.defs.videos.partitions import videos_partitions

PER_VIDEO_ASSETS = ("decoded_frames", "clip_tensors", "clip_embeddings", "stored_features")


def chains(defs: dg.Definitions | None) -> list[list[dg.AssetKey]]:
    """Each feature set's four per-video assets in chain order (from the assets' stage tags; the
    default set's alone when there are no definitions to read)."""
    if defs is None:
        return [[dg.AssetKey(s) for s in PER_VIDEO_ASSETS]]
    from vid_assets.defs.videos.assets import SET_TAG, STAGE_TAG

    by_set: dict[str, dict[str, dg.AssetKey]] = {}
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        tags = graph.get(key).tags or {}
        if tags.get(STAGE_TAG) in PER_VIDEO_ASSETS:
            by_set.setdefault(tags.get(SET_TAG, "default"), {})[tags[STAGE_TAG]] = key
    ordered = sorted(by_set.items(), key=lambda kv: (kv[0] != "default", kv[0]))
    return [[stages[s] for s in PER_VIDEO_ASSETS] for _, stages in ordered]


IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def busy_seconds(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of ``(start, end)`` intervals: time when at least one run was working."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def _rate(instance: dg.DagsterInstance, records) -> float | None:
    """Videos per second over the recent materializations, over the time the runs that made them
    were working (the union of their start..end): idle hours between runs do not count, and a
    batch run that reports its videos within milliseconds still counts its whole run."""
    run_ids = sorted({r.run_id for r in records if r.run_id})
    if not run_ids:
        return None
    now = time.time()
    runs = instance.get_run_records(dg.RunsFilter(run_ids=run_ids))
    busy = busy_seconds([(r.start_time, r.end_time or now) for r in runs if r.start_time])
    return len(records) / busy if busy > 0 else None


def latest_by_partition(instance: dg.DagsterInstance, key: dg.AssetKey, page: int = 5000) -> dict[str, tuple[int, str]]:
    """``{partition: (storage id, code version)}`` of each partition's latest materialization,
    paging through the history newest first (public ``fetch_materializations``)."""
    latest: dict[str, tuple[int, str]] = {}
    cursor = None
    while True:
        result = instance.fetch_materializations(key, limit=page, cursor=cursor, ascending=False)
        for r in result.records:
            if r.partition_key is not None and r.partition_key not in latest:
                tags = r.asset_materialization.tags or {} if r.asset_materialization else {}
                latest[r.partition_key] = (r.storage_id, tags.get("dagster/code_version", ""))
        if not result.has_more:
            return latest
        cursor = result.cursor


def stale_partitions(instance: dg.DagsterInstance, defs: dg.Definitions) -> dict[str, set[str]]:
    """Materialized partitions that are stale, per asset (``decoded_frames``, ``<set>/decoded_frames``
    ...: each feature set's chain): the asset's code version changed since
    (config changes change it, see ``definitions.versioned``; a materialization without a recorded
    version counts as current, as in Dagster), its upstream partition was materialized again after
    it, or its upstream partition is stale. The last rule goes further than the UI, which marks
    only the asset whose version changed until that asset is re-materialized; but the downstream
    data was made from the old upstream data, so it is counted here."""
    graph = defs.resolve_asset_graph()
    stale: dict[str, set[str]] = {}
    for chain in chains(defs):
        upstream: dict[str, tuple[int, str]] | None = None
        prev: set[str] = set()
        for key in chain:  # each asset's only per-video upstream is the previous one
            current = graph.get(key).code_version or ""
            latest = latest_by_partition(instance, key)
            prev = stale[key.to_user_string()] = {
                p
                for p, (sid, version) in latest.items()
                if (version and version != current)
                or p in prev
                or (upstream is not None and upstream.get(p, (-1, ""))[0] > sid)
            }
            upstream = latest
    return stale


def progress(instance: dg.DagsterInstance, catalog=None, recent: int = 200, defs: dg.Definitions | None = None) -> dict:
    """Per asset: done / stale / failed / in progress / missing counts; throughput and ETA; latest
    failures. ``stale`` (a subset of done) needs the current ``defs`` (code versions)."""
    keys = instance.get_dynamic_partitions(videos_partitions.name)
    out: dict = {"videos": len(keys), "assets": {}}
    stale = stale_partitions(instance, defs) if defs is not None else None
    working = bool(instance.get_run_records(dg.RunsFilter(statuses=IN_FLIGHT), limit=1))
    out["runs_in_flight"] = working
    for ak in [key for chain in chains(defs) for key in chain]:
        name = ak.to_user_string()
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
        rate = _rate(instance, records)
        todo = counts["missing"] + counts["in_progress"]
        counts["videos_per_hour"] = round(rate * 3600, 1) if rate else None
        # an ETA only while work is queued or running: nothing else will finish the missing videos
        counts["eta_s"] = (round(todo / rate) if rate and todo and working else None) if todo else 0
        counts["last_materialized"] = times[-1] if times else None
        counts["stale"] = None if stale is None else len(stale[name] & set(keys))
        out["assets"][name] = counts
    out["failures"] = sorted(catalog.failures(), key=lambda f: f["time"], reverse=True)[:10] if catalog else []
    out["generated_at"] = time.time()
    return out
