"""Scale figures on SQLite (or `--postgres`): registering N new videos through the sensor, `status` over them, and
the UI's asset partitions page (its GraphQL query, against a real `dagster-webserver`).

    python benchmarks/scale.py --json out.json [--videos 10000]

Files are tiny stand-ins (the sensor hashes head+tail blocks; decoding is not involved). Each tick
is evaluated the way the daemon does (sensor function + applying its dynamic-partition request).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

os.environ.setdefault("VID_ASSETS_SETTLE_S", "0")  # the stand-in files are written just before the ticks
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vid_assets.defs.resources import WorkspaceResource  # noqa: E402
from vid_assets.defs.videos.sensors import build_videos_sensor  # noqa: E402
from vid_assets.defs.videos.status import progress  # noqa: E402

PARTITIONS_QUERY = """
query AssetPartitions($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      partitionKeysByDimension { name partitionKeys }
      partitionStats { numMaterialized numFailed numPartitions }
      assetPartitionStatuses {
        __typename
        ... on DefaultPartitionStatuses { materializedPartitions failedPartitions materializingPartitions }
      }
    }
  }
}
"""


def ui_partition_page(home: Path, tmp: Path) -> dict:
    """Start `dagster-webserver` on the instance and time the partitions page's GraphQL query."""
    import httpx

    from vid_assets.devtools.net import dagster_webserver

    with dagster_webserver(home, tmp / "data") as base:
        times, n = [], 0
        for _ in range(3):  # cold, then warm (the UI polls)
            t0 = time.perf_counter()
            body = {"query": PARTITIONS_QUERY, "variables": {"key": {"path": ["stored_features"]}}}
            data = httpx.post(base + "/graphql", json=body, timeout=120).json()["data"]["assetNodeOrError"]
            times.append(round(time.perf_counter() - t0, 3))
            n = len(data["partitionKeysByDimension"][0]["partitionKeys"])
    return {"ui_partitions_query_s": times, "ui_partitions_seen": n}


def materialized_status(instance, workspace, tmp: Path) -> dict:
    """Every partition materialized once per asset (runless events carrying the current code
    version, as a run would record), then `status` with stale counts over them."""
    from vid_assets.defs.build import build_definitions
    from vid_assets.defs.videos.status import PER_VIDEO_ASSETS

    defs = build_definitions(work_dir=workspace.work_dir, store_dir=str(tmp / "store.zarr"))
    graph = defs.resolve_asset_graph()
    keys = instance.get_dynamic_partitions("videos")
    t0 = time.perf_counter()
    for name in PER_VIDEO_ASSETS:
        version = graph.get(dg.AssetKey(name)).code_version
        for k in keys:
            instance.report_runless_asset_event(
                dg.AssetMaterialization(asset_key=name, partition=k, tags={"dagster/code_version": version})
            )
    recorded = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = progress(instance, workspace.catalog(), defs=defs)
    elapsed = time.perf_counter() - t0
    assert report["assets"]["stored_features"]["done"] == len(keys)
    return {
        "materializations_recorded": len(keys) * len(PER_VIDEO_ASSETS),
        "record_ms_per_event": round(recorded / (len(keys) * len(PER_VIDEO_ASSETS)) * 1000, 2),
        "status_10k_materialized_s": round(elapsed, 2),
        "stale_after": {n: c["stale"] for n, c in report["assets"].items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=10_000)
    ap.add_argument("--no-ui", action="store_true", help="skip the dagster-webserver / GraphQL figure")
    ap.add_argument(
        "--materialized",
        action="store_true",
        help="also record a materialization of all four assets for every partition, then time status with stale counts",
    )
    ap.add_argument("--postgres", action="store_true", help="instance storage on a PostgreSQL started here (loopback)")
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.postgres:
        from vid_assets.devtools.postgres import local_postgres

        with local_postgres() as url:
            run(args, {"storage": {"postgres": {"postgres_url": url}}})
    else:
        run(args, None)


def run(args, overrides: dict | None) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="vid_assets_scale_"))
    videos = tmp / "videos"
    videos.mkdir()
    for i in range(args.videos):
        (videos / f"clip_{i:05d}.mp4").write_bytes(os.urandom(2048))
    workspace = WorkspaceResource(work_dir=str(tmp / "work"))
    sensor = build_videos_sensor(str(videos))
    (tmp / "home").mkdir()
    res: dict = {"machine": f"{platform.machine()} {os.cpu_count()} cores", "videos": args.videos, "ticks": []}
    res["storage"] = "postgres" if overrides else "sqlite"
    with dg.instance_for_test(temp_dir=str(tmp / "home"), overrides=overrides) as instance:
        cursor, registered, t_all = None, 0, time.perf_counter()
        while registered < args.videos:
            t0 = time.perf_counter()
            result = sensor(
                dg.build_sensor_context(instance=instance, cursor=cursor, resources={"workspace": workspace})
            )
            for req in result.dynamic_partitions_requests:
                instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
            cursor = result.cursor
            added = sum(len(req.partition_keys) for req in result.dynamic_partitions_requests)
            registered += added
            res["ticks"].append(round(time.perf_counter() - t0, 3))
            if not added:
                break
        res["sensor_s"] = round(time.perf_counter() - t_all, 2)
        res["max_tick_s"] = max(res["ticks"])
        t0 = time.perf_counter()
        result = sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources={"workspace": workspace}))
        res["idle_tick_s"] = round(time.perf_counter() - t0, 3)  # nothing new: every file skipped by fingerprint
        res["cursor_bytes"] = len(cursor or "")
        t0 = time.perf_counter()
        report = progress(instance, workspace.catalog())
        res["status_s"] = round(time.perf_counter() - t0, 3)
        res["partitions"] = report["videos"]
        if args.materialized:
            res |= materialized_status(instance, workspace, tmp)
    if not args.no_ui:
        res |= ui_partition_page(tmp / "home", tmp)
    res["num_ticks"] = len(res["ticks"])
    res["ticks"] = res["ticks"][:3] + ["..."] + res["ticks"][-2:] if len(res["ticks"]) > 6 else res["ticks"]
    print(json.dumps(res, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
