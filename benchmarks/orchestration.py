"""Dagster overhead: N short videos through the assets vs a plain loop making the same library calls.

    python benchmarks/orchestration.py --json out.json [--videos 200] [--executor in_process|forkserver|spawn]

Dagster path (real on-disk instance): the ``embed_videos`` job (all four assets) over partition
ranges of ``BATCH`` videos, the shape a UI backfill or the sensor gives (``BackfillPolicy.multi_run``).
Loop path: ``stages.*`` called per video, the same batching for the embedding step. Both start with
the model loaded. ``--executor in_process`` (default) measures Dagster's bookkeeping alone; the
multiprocess executor (what ``dagster dev`` and ``dagster asset materialize`` use) adds a process
per step, started by forkserver (the default) or spawn, and loads the model once per run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vid_assets import stages  # noqa: E402
from vid_assets.demo import QUIET, register_videos  # noqa: E402
from vid_assets.extractors import get_extractor  # noqa: E402
from vid_assets.media import VideoRef  # noqa: E402
from vid_assets.pipeline.assets import BATCH  # noqa: E402
from vid_assets.pipeline.definitions import build_definitions  # noqa: E402
from vid_assets.pipeline.resources import ExtractorResource, SamplingResource  # noqa: E402
from vid_assets.samples import write_synthetic_video  # noqa: E402
from vid_assets.store import ArtifactStore, FeatureStore  # noqa: E402


def run_loop(paths: list[Path], cfg, model, root: Path) -> tuple[float, list[str]]:
    """The plain loop: ``stages.*`` per video, embedding in the same batches as the assets."""
    art, store = ArtifactStore(root / "artifacts"), FeatureStore(root / "store.zarr")
    t0 = time.perf_counter()
    refs = [VideoRef.from_path(p) for p in paths]
    for ref in refs:
        stages.decode_video(ref, cfg.plan, art)
        stages.build_clips(ref.key, cfg.clip, art)
    for i in range(0, len(refs), BATCH):
        batch = [r.key for r in refs[i : i + BATCH]]
        stages.embed_videos(batch, model, art)
        for k in batch:
            stages.store_video(k, art, store)
    return time.perf_counter() - t0, store.list_videos()


def _definitions(folder: Path, root: Path) -> dg.Definitions:
    return build_definitions(
        videos_dir=str(folder),
        work_dir=str(root / "work"),
        store_dir=str(root / "store.zarr"),
        extractor=ExtractorResource(device="cpu", batch_size=8),
        sampling=SamplingResource(),
    )


def embed_videos_job() -> dg.JobDefinition:
    """What each step process of a multiprocess run rebuilds (paths from the environment)."""
    env = os.environ
    return _definitions(Path(env["ORCH_VIDEOS"]), Path(env["ORCH_ROOT"])).resolve_job_def("embed_videos")


def run_dagster(paths: list[Path], folder: Path, root: Path, args) -> tuple[float, list[str], int]:
    """The ``embed_videos`` job over partition ranges of ``BATCH`` on a fresh on-disk instance."""
    defs = _definitions(folder, root)
    if args.executor != "in_process":
        os.environ.update(ORCH_VIDEOS=str(folder), ORCH_ROOT=str(root), VID_ASSETS_STEP_START=args.executor)
    (root / "home").mkdir(parents=True)
    with contextlib.ExitStack() as stack:
        overrides = None
        if args.postgres:
            from vid_assets.devtools.postgres import local_postgres

            settings = {"synchronous_commit": "off"} if args.pg_async_commit else None
            overrides = {
                "storage": {"postgres": {"postgres_url": stack.enter_context(local_postgres(settings=settings))}}
            }
        instance = stack.enter_context(dg.instance_for_test(temp_dir=str(root / "home"), overrides=overrides))
        t0 = time.perf_counter()
        keys = [r.key for r in register_videos(instance, defs, paths)]
        job = defs.resolve_job_def("embed_videos")  # all four assets, BATCH partitions per run
        for i in range(0, len(keys), BATCH):
            chunk = keys[i : i + BATCH]
            tags = {"dagster/asset_partition_range_start": chunk[0], "dagster/asset_partition_range_end": chunk[-1]}
            if args.executor == "in_process":
                assert job.execute_in_process(instance=instance, tags=tags, run_config=QUIET).success
            else:
                with dg.execute_job(
                    dg.reconstructable(embed_videos_job), instance=instance, tags=tags, run_config=QUIET
                ) as result:
                    assert result.success
        seconds = time.perf_counter() - t0
    return seconds, FeatureStore(root / "store.zarr").list_videos(), -(-len(keys) // BATCH)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=200)
    ap.add_argument("--postgres", action="store_true", help="instance storage on a throwaway local PostgreSQL")
    ap.add_argument("--pg-async-commit", action="store_true", help="with --postgres: synchronous_commit=off")
    ap.add_argument("--seconds", type=float, default=2.0, help="length of each video")
    ap.add_argument("--size", default="160x120", help="frame size WxH of the generated videos")
    ap.add_argument("--rounds", type=int, default=3, help="alternating loop/Dagster rounds (medians are reported)")
    ap.add_argument("--executor", choices=["in_process", "forkserver", "spawn"], default="in_process")
    ap.add_argument("--json")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vid_assets_orch_"))
    folder = tmp / "videos"
    size = tuple(map(int, args.size.split("x")))
    paths = [
        write_synthetic_video(folder / f"v{i:04d}.mp4", seconds=args.seconds, fps=24, size=size, seed=i)
        for i in range(args.videos)
    ]
    model = get_extractor("efficientnet_lite0", device="cpu", precision="auto", compile=False)
    model.batch_size = 8
    # This host's speed drifts by +-20 % within minutes, so the two paths alternate and the
    # per-round ratios and their median are reported.
    loops, dags, runs = [], [], 0
    for r in range(args.rounds):
        t_loop, loop_videos = run_loop(paths, SamplingResource().config(), model, tmp / f"loop{r}")
        # one folder for every round: a forkserver keeps the environment it started with
        shutil.rmtree(tmp / "dg", ignore_errors=True)
        t_dg, dg_videos, runs = run_dagster(paths, folder, tmp / "dg", args)
        assert dg_videos == loop_videos
        loops.append(t_loop)
        dags.append(t_dg)
        print(f"round {r + 1}: loop {t_loop:.2f} s, Dagster {t_dg:.2f} s, ratio {t_dg / t_loop:.3f}", flush=True)
    ratios = [d / lo for d, lo in zip(dags, loops, strict=True)]
    t_loop, t_dg = statistics.median(loops), statistics.median(dags)
    res = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "videos": args.videos,
        "video": f"{args.seconds:g} s {args.size} H.264, 2 fps, clips of 2 frames, EfficientNet-Lite0 CPU",
        "instance_storage": ("postgres" + (" (synchronous_commit=off)" if args.pg_async_commit else ""))
        if args.postgres
        else "sqlite",
        "executor": args.executor,
        "batch": BATCH,
        "rounds": args.rounds,
        "loop_s": round(t_loop, 2),
        "dagster_s": round(t_dg, 2),
        "dagster_runs": runs,
        "dagster_vs_loop": round(statistics.median(ratios), 3),
        "rounds_ratio": [round(x, 3) for x in ratios],
        "overhead_per_video_s": round((t_dg - t_loop) / max(1, args.videos), 4),
    }
    print(json.dumps(res, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
