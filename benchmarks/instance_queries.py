"""What the queries an instance's daemons repeat cost: Dagster's stock SQLite storage against the
project's (``vid_assets/instance/sqlite.py``: one engine per database per process), side by side.

    python benchmarks/instance_queries.py --rounds 5 --json out.json

Each storage gets a fresh ``DAGSTER_HOME`` holding a few runs, and the same queries, alternating
which storage goes first each round: the run queue's pair (runs in progress, queued runs, every
second while runs are in flight), the sensor daemon's instigator states, a partition list, the
concurrency run ids (run monitoring), and creating one run of the embed job over 512 videos (its
planned events: one check row per check and video). Prints milliseconds per query (median of
rounds) and ``project_vs_stock``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vid_assets.devtools.host import cpu_model  # noqa: E402


def instance(home: Path, project: bool):
    import dagster as dg

    config = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    if project:
        config["storage"]["custom"]["config"]["base_dir"] = str(home)
    else:
        config.pop("storage")
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    inst = dg.DagsterInstance.from_config(str(home))
    job = dg.JobDefinition(graph_def=dg.GraphDefinition("g"))
    for _ in range(20):
        inst.create_run_for_job(job)
    inst.add_dynamic_partitions("videos", [f"v{i:04d}" for i in range(VIDEOS)])
    return inst


VIDEOS = 512
# calls per round of a query that costs a good part of a second
SLOW = {"512-video run created": 3}


def run_creator(inst, home: Path):
    """Creating a run of the embed job over every video, as the backfill daemon does."""
    from dagster._core.execution.api import create_execution_plan

    from vid_assets.defs.build import build_definitions
    from vid_assets.defs.videos.sensors import RANGE_END, RANGE_START

    defs = build_definitions(videos_dir=str(home / "videos"), work_dir=str(home / "work"), store_dir=str(home / "z"))
    job = defs.resolve_job_def("embed_videos")
    tags = {RANGE_START: "v0000", RANGE_END: f"v{VIDEOS - 1:04d}"}
    plan = create_execution_plan(job, tags=tags, instance_ref=inst.get_ref())
    return lambda: inst.create_run_for_job(job_def=job, execution_plan=plan, tags=tags)


def queries(inst, home: Path) -> dict:
    import dagster as dg

    started = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING]
    return {
        "run queue pair": lambda: (
            inst.get_run_records(dg.RunsFilter(statuses=started)),
            inst.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED])),
        ),
        "instigator states": inst.all_instigator_state,
        "partition list": lambda: inst.get_dynamic_partitions("videos"),
        "concurrency run ids": inst.event_log_storage.get_concurrency_run_ids,
        "512-video run created": run_creator(inst, home),
    }


def time_query(fn, n: int) -> float:
    fn()  # first use: databases opened, schema checked
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=100, help="calls of each query per round")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vid_assets_queries_"))
    os.environ.setdefault("DAGSTER_HOME", str(tmp))
    inst = {name: instance(tmp / name, name == "project") for name in ("stock", "project")}
    calls = {name: queries(inst[name], tmp / name) for name in inst}
    ms: dict = {name: {} for name in inst}
    for r in range(args.rounds):
        for name in ("stock", "project") if r % 2 == 0 else ("project", "stock"):
            for q, fn in calls[name].items():
                ms[name].setdefault(q, []).append(time_query(fn, SLOW.get(q, args.n)))
    rows = {q: {name: statistics.median(ms[name][q]) for name in inst} for q in calls["stock"]}
    print(f"{'query':22s} {'stock ms':>9s} {'project ms':>11s} {'x':>6s}")
    for q, r in rows.items():
        print(f"{q:22s} {r['stock']:9.2f} {r['project']:11.2f} {r['stock'] / r['project']:6.1f}")
    result = {
        "machine": f"{platform.node()} {cpu_model()} x{os.cpu_count()}",
        "rounds": args.rounds,
        "ms_per_query": rows,
        "project_vs_stock": {q: r["stock"] / r["project"] for q, r in rows.items()},
        "all_rounds": ms,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
