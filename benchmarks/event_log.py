"""What writing a batch run's per-video events costs: Dagster's stock SQLite event log against the
project's (``vid_assets/instance/event_log.py``), on the same events, side by side.

    python benchmarks/event_log.py --videos 64 --rounds 6 --json out.json

A real batch run (``embed_videos`` over ``--videos`` short synthetic videos, in process) makes the
events: four materializations and four check results per video. They are then written again, the
way a run writes them (one batch per asset, then the check results), into a fresh stock and a
fresh project event log, alternating which goes first each round; each log holds the run's planned
checks first, as a run's does. Prints per-event milliseconds and ``project_vs_stock``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vid_assets.devtools.host import cpu_model  # noqa: E402

KINDS = ("ASSET_MATERIALIZATION", "ASSET_CHECK_EVALUATION")


def run_events(root: Path, videos: int) -> tuple[list, list]:
    """A batch run's asset events and its planned checks, from a real run over ``videos`` videos."""
    import dagster as dg

    from vid_assets.defs.build import build_definitions
    from vid_assets.defs.resources import ExtractorResource
    from vid_assets.defs.videos.sensors import RANGE_END, RANGE_START
    from vid_assets.demo import register_videos
    from vid_assets.samples import write_synthetic_video

    folder = root / "videos"
    folder.mkdir()
    write_synthetic_video(folder / "base.mp4", seconds=1.0, fps=10, size=(96, 64), seed=1)
    base = (folder / "base.mp4").read_bytes()
    paths = []
    for i in range(videos):  # distinct bytes (distinct partitions), the same decodable video
        paths.append(folder / f"v{i:04d}.mp4")
        paths[-1].write_bytes(base + i.to_bytes(4, "little"))
    (folder / "base.mp4").unlink()
    defs = build_definitions(
        work_dir=str(root / "work"), store_dir=str(root / "f.zarr"), extractor=ExtractorResource(device="cpu")
    )
    (root / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(root / "home")) as instance:
        keys = [r.key for r in register_videos(instance, defs, paths)]
        result = defs.resolve_job_def("embed_videos").execute_in_process(
            instance=instance, tags={RANGE_START: keys[0], RANGE_END: keys[-1]}
        )
        assert result.success
        records = instance.get_records_for_run(result.run_id, limit=1_000_000).records
    entries = [r.event_log_entry for r in records if r.event_log_entry.dagster_event]
    events = [e for e in entries if e.dagster_event.event_type_value in KINDS]
    planned = [e for e in entries if e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION_PLANNED"]
    return events, planned


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "1000")
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    from vid_assets.instance.event_log import BatchingSqliteEventLogStorage

    with tempfile.TemporaryDirectory(prefix="vid_assets_event_log_") as tmp:
        tmp = Path(tmp)
        events, planned = run_events(tmp, args.videos)
        batches = defaultdict(list)  # as the run writes them: one batch per asset, then the checks
        for e in events:
            batches[(e.dagster_event.event_type_value, str(e.dagster_event.asset_key))].append(e)
        logs = {
            "stock": SqliteEventLogStorage(str(tmp / "stock")),
            "project": BatchingSqliteEventLogStorage(str(tmp / "project")),
        }
        for log in logs.values():
            for e in planned:
                log.store_event(e)
        times = defaultdict(list)
        for i in range(args.rounds):
            for name in list(logs) if i % 2 == 0 else list(logs)[::-1]:
                t0 = time.perf_counter()
                for batch in batches.values():
                    logs[name].store_event_batch(batch)
                times[name].append(time.perf_counter() - t0)
    median = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    result = {
        "machine": f"{platform.node()} {cpu_model()} x{os.cpu_count()}",
        "videos": args.videos,
        "events": len(events),
        "rounds": args.rounds,
        **{f"{k}_ms_per_event": 1000 * v / len(events) for k, v in median.items()},
        "project_vs_stock": median["stock"] / median["project"],
        "seconds": dict(times),
    }
    print(f"{'log':<8} {'ms/event':>9}  ({len(events)} events of {args.videos} videos, median of {args.rounds})")
    for name, v in median.items():
        print(f"{name:<8} {1000 * v / len(events):9.3f}")
    print(f"project_vs_stock {result['project_vs_stock']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
