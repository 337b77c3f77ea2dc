"""Per-segment training reads: ``SegmentDataset`` over a training view, by the view's chunking.

    python benchmarks/segments.py --json out.json [--videos 250] [--chunks 1024,100,20]

Builds (once per chunking, in benchmarks/out/) a real store + training view the way the pipeline
writes them: ``--videos`` videos of 20 segments x 20 frames (a segments plan with
``frames_per_clip=1``: one row per frame), each row ``[1, 1280]`` float16 (EfficientNet-Lite0's
width). Then reads shuffled epochs of segments through ``DataLoader(SegmentDataset(view,
batch_size=64), batch_size=None)`` with 0 and 2 workers. Zarr reads whole chunks and pays a fixed
cost per call, so the view's ``chunk_rows`` sets how many segments each read serves.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vid_assets.loader import SegmentDataset  # noqa: E402
from vid_assets.store import FeatureStore  # noqa: E402
from vid_assets.store.training import update_training_view  # noqa: E402

SEGMENTS, FRAMES, DIM = 20, 20, 1280


def build_store(path: Path, videos: int) -> FeatureStore:
    store = FeatureStore(path)
    if len(store.list_videos()) == videos:
        return store
    rng = np.random.default_rng(0)
    n = SEGMENTS * FRAMES
    times = np.arange(n) * 0.25
    for v in range(videos):
        store.write_video(
            f"v{v:05d}",
            features=rng.standard_normal((n, 1, DIM)).astype(np.float32),
            timestamps=np.stack([times, times + 0.25], 1),
            frame_times=times[:, None],
            attrs={"extractor": "bench@1", "sampling_plan": {"mode": "segments"}},
            segments=np.repeat(np.arange(SEGMENTS), FRAMES),
        )
    return store


def epoch(view: Path, workers: int, batch: int) -> tuple[float, int]:
    ds = SegmentDataset(view, batch_size=batch, shuffle=True)
    loader = DataLoader(ds, batch_size=None, num_workers=workers, prefetch_factor=4 if workers else None)
    it = iter(loader)
    n = len(next(it)["segment"])  # worker start-up is not part of the rate
    t0 = time.perf_counter()
    for b in it:
        n += len(b["segment"])
        assert b["features"].shape[1:] == (FRAMES, 1, DIM)
    assert n == ds.num_items
    return time.perf_counter() - t0, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json")
    ap.add_argument("--videos", type=int, default=250)
    ap.add_argument("--chunks", default="1024,100,20", help="training-view chunk_rows to compare")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "out"))
    args = ap.parse_args()
    out = Path(args.out)
    store = build_store(out / f"segments_store_{args.videos}.zarr", args.videos)
    rows = []
    for chunk in (int(c) for c in args.chunks.split(",")):
        view = out / f"segments_view_{args.videos}_{chunk}.zarr"
        if not (view / "zarr.json").exists():
            shutil.rmtree(view, ignore_errors=True)
            update_training_view(store, view, chunk_rows=chunk)
        mb = sum(p.stat().st_size for p in (view / "features").rglob("*") if p.is_file()) / 2**20
        for workers in (0, 2):
            rates = []
            for _ in range(args.rounds):
                dt, n = epoch(view, workers, args.batch)
                rates.append(n / dt)
            row = {
                "chunk_rows": chunk,
                "workers": workers,
                "segments_per_s": float(np.median(rates)),
                "rounds": rates,
                "view_mb": mb,
            }
            rows.append(row)
            print(
                f"chunk_rows {chunk:5d}  workers {workers}  {row['segments_per_s']:8.0f} segments/s  "
                f"(rounds {', '.join(f'{r:.0f}' for r in rates)})"
            )
    result = {
        "machine": platform.node(),
        "cpus": __import__("os").cpu_count(),
        "videos": args.videos,
        "segments": args.videos * SEGMENTS,
        "segment_shape": [FRAMES, 1, DIM],
        "batch": args.batch,
        "rows": rows,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
