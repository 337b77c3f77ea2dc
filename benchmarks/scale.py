"""Scale figures on SQLite: registering 10,000 new videos through the sensor, and `status` over them.

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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vid_assets.pipeline.resources import WorkspaceResource  # noqa: E402
from vid_assets.pipeline.sensors import build_videos_sensor  # noqa: E402
from vid_assets.pipeline.status import progress  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=10_000)
    ap.add_argument("--json")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vid_assets_scale_"))
    videos = tmp / "videos"
    videos.mkdir()
    for i in range(args.videos):
        (videos / f"clip_{i:05d}.mp4").write_bytes(os.urandom(2048))
    workspace = WorkspaceResource(work_dir=str(tmp / "work"))
    sensor = build_videos_sensor(str(videos))
    (tmp / "home").mkdir()
    res: dict = {"machine": f"{platform.machine()} {os.cpu_count()} cores", "videos": args.videos, "ticks": []}
    with dg.instance_for_test(temp_dir=str(tmp / "home")) as instance:
        cursor, registered, t_all = None, 0, time.perf_counter()
        while registered < args.videos:
            t0 = time.perf_counter()
            result = sensor(
                dg.build_sensor_context(instance=instance, cursor=cursor, resources={"workspace": workspace})
            )
            for req in result.dynamic_partitions_requests:
                instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
            cursor = result.cursor
            registered += len(result.run_requests)
            res["ticks"].append(round(time.perf_counter() - t0, 3))
            if not result.run_requests:
                break
        res["sensor_10k_s"] = round(time.perf_counter() - t_all, 2)
        res["max_tick_s"] = max(res["ticks"])
        t0 = time.perf_counter()
        result = sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources={"workspace": workspace}))
        res["idle_tick_s"] = round(time.perf_counter() - t0, 3)  # nothing new: every file skipped by fingerprint
        res["cursor_bytes"] = len(cursor or "")
        t0 = time.perf_counter()
        report = progress(instance, workspace.catalog())
        res["status_10k_s"] = round(time.perf_counter() - t0, 3)
        res["partitions"] = report["videos"]
    res["num_ticks"] = len(res["ticks"])
    res["ticks"] = res["ticks"][:3] + ["..."] + res["ticks"][-2:] if len(res["ticks"]) > 6 else res["ticks"]
    print(json.dumps(res, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
