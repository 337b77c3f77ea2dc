"""Training-loader throughput over a Zarr store of VAE-latent-sized segments.

    python benchmarks/loader.py --json out.json [--level 3] [--chunk 64]

Builds (once, in benchmarks/out/) a store of 5,000 segments shaped 20x4x32x32 float16 (the
reference project's VAE latents, loaded at 3,369 samples/s on a CPU there) plus segment_to_video and
timestamps, then reads full epochs through ``vid_assets.loader.ClipDataset`` wrapped in a
``torch.utils.data.DataLoader(batch_size=None)``: batch 1 and 64, shuffled, 0 and 2 workers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import zarr
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vid_assets.loader import ClipDataset  # noqa: E402
from vid_assets.store.zarr_utils import blosc  # noqa: E402

N, SHAPE = 5000, (20, 4, 32, 32)


def build(path: Path, chunk: int, level: int, cname: str) -> Path:
    if (path / "zarr.json").exists():
        return path
    rng = np.random.default_rng(0)
    g = zarr.open_group(zarr.storage.LocalStore(path), mode="w", zarr_format=3)
    feats = g.create_array(
        "features", shape=(N, *SHAPE), chunks=(chunk, *SHAPE), dtype=np.float16, compressors=blosc(level)
    )
    for lo in range(0, N, chunk):
        hi = min(N, lo + chunk)
        feats[lo:hi] = rng.standard_normal((hi - lo, *SHAPE)).astype(np.float16)
    g.create_array("segment_to_video", data=(np.arange(N) // 25).astype(np.int32), chunks=(chunk,))
    g.create_array("timestamps", data=np.stack([np.arange(N) * 5.0, np.arange(N) * 5.0 + 5], 1), chunks=(chunk, 2))
    g.attrs["num_rows"] = N
    return path


def epoch(path: Path, batch: int, workers: int, shuffle: bool, buffer: int) -> tuple[float, int]:
    ds = ClipDataset(path, batch_size=batch, shuffle=shuffle, seed=0, shuffle_buffer=buffer)
    loader = DataLoader(
        ds, batch_size=None, num_workers=workers, prefetch_factor=4 if workers else None, persistent_workers=False
    )
    it = iter(loader)
    first = next(it)  # worker start-up is not part of the steady-state rate
    n = len(first["index"])
    t0 = time.perf_counter()
    for b in it:
        n += len(b["index"])
    return time.perf_counter() - t0, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json")
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--level", type=int, default=3)
    ap.add_argument("--cname", default="zstd", help="blosc codec: zstd, lz4, blosclz ...")
    ap.add_argument("--shuffle-buffer", type=int, default=2, help="chunks mixed per shuffle pool")
    ap.add_argument("--quick", action="store_true", help="batch 64, shuffled, 0 workers only")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "out"))
    args = ap.parse_args()
    name = f"loader_{N}x{'x'.join(map(str, SHAPE))}_c{args.chunk}_{args.cname}{args.level}.zarr"
    path = build(Path(args.out) / name, args.chunk, args.level, args.cname)
    sample_mb = np.prod(SHAPE) * 2 / 1e6
    disk = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    res = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "store_mb_on_disk": round(disk / 1e6, 1),
        "store_mb_raw": round(N * sample_mb, 1),
        "chunk_rows": args.chunk,
        "codec": f"blosc {args.cname} level {args.level}",
        "shuffle_buffer": args.shuffle_buffer,
        "rows": [],
    }
    grid = [(64, 0, True)] if args.quick else [(b, w, s) for b in (1, 64) for w in (0, 2) for s in (True, False)]
    for batch, workers, shuffle in grid:
        secs, n = epoch(path, batch, workers, shuffle, args.shuffle_buffer)
        rate = (n - batch) / secs
        row = {
            "batch": batch,
            "workers": workers,
            "shuffled": shuffle,
            "samples_per_s": round(rate),
            "mb_per_s": round(rate * sample_mb),
        }
        res["rows"].append(row)
        print(row, flush=True)

    def best(b: int) -> int | None:
        rates = [r["samples_per_s"] for r in res["rows"] if r["batch"] == b and r["shuffled"]]
        return max(rates) if rates else None

    res["samples_per_s_b64_shuffled"] = best(64)
    res["samples_per_s_b1_shuffled"] = best(1)
    print(json.dumps({k: v for k, v in res.items() if k != "rows"}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
