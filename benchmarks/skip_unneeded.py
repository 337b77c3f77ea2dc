"""Decoding only what a plan can pick: ``iter_frames`` with and without dropping unreferenced frames.

    python benchmarks/skip_unneeded.py --json out.json [--rounds 3]

A sparse plan (the default 2 fps over 30-fps video keeps one frame in 15) used to decode every
frame. Frames nothing references (most B-frames) that no target can pick are now dropped by FFmpeg
before decoding (``skip_frame = NONREF``, ``media/sampler.py``); the frames returned are the same
(tested). This times ``iter_frames`` (decode + the kept frames' conversion to RGB at 224 px, as
the engine asks) both ways, on the same files, the two alternating in each round, best of the
rounds; one decoder thread per process, as many parallel decoders run on a many-core host, and
FFmpeg's default threads. Prints a table; ``off_vs_on`` > 1 means the new default is faster.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vid_assets.devtools.host import cpu_model  # noqa: E402
from vid_assets.media import DecodeStats, SamplingPlan, iter_frames  # noqa: E402
from vid_assets.samples import real_sample_paths, write_synthetic_video  # noqa: E402


def videos(cache: Path) -> dict[str, Path]:
    """Synthetic videos as the other benchmarks make them (libx264 defaults: B-frames, GOP 1 s),
    and the real sample footage where installed."""
    cache.mkdir(parents=True, exist_ok=True)
    made = {}
    for name, seconds, size in (("1080p_10s", 10, (1920, 1080)), ("320x240_10s", 10, (320, 240))):
        path = cache / f"{name}.mp4"
        if not path.exists():
            write_synthetic_video(path, seconds=seconds, fps=30, size=size, seed=7)
        made[name] = path
    real = real_sample_paths()
    made.update({f"real_{n.split('.')[0]}": p for n, p in real.items() if n in ("bikes.mp4", "bigbuckbunny.mp4")})
    return made


def decode(path: Path, plan: SamplingPlan, skip: bool, threads: int) -> tuple[float, DecodeStats, int]:
    stats = DecodeStats()
    t0 = time.perf_counter()
    kept = sum(1 for _ in iter_frames(path, plan, stats=stats, threads=threads, skip_unneeded=skip))
    return time.perf_counter() - t0, stats, kept


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default=None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "vid_assets_skip_unneeded"))
    args = ap.parse_args()
    rows = []
    for name, path in videos(Path(args.cache)).items():
        for fps in (1.0, 2.0, 4.0):
            plan = SamplingPlan.at_fps(fps, short_side=224)
            for threads in (1, 0):
                best = {True: float("inf"), False: float("inf")}
                for r in range(args.rounds):
                    for skip in (True, False) if r % 2 else (False, True):
                        took, stats, kept = decode(path, plan, skip, threads)
                        best[skip] = min(best[skip], took)
                        if skip:
                            decoded, skipped = stats.decoded, stats.skipped
                        else:
                            everything = stats.decoded
                row = {
                    "video": name,
                    "fps": fps,
                    "threads": threads or "auto",
                    "kept": kept,
                    "decoded_off": everything,
                    "decoded_on": decoded,
                    "skipped_on": skipped,
                    "seconds_off": best[False],
                    "seconds_on": best[True],
                    "off_vs_on": best[False] / best[True],
                }
                rows.append(row)
                print(
                    f"{name:14s} {fps:3.0f} fps  threads {row['threads']!s:4s}  decoded {everything:4d} -> {decoded:4d}"
                    f"  {best[False]:.3f} -> {best[True]:.3f} s  x{row['off_vs_on']:.2f}",
                    flush=True,
                )
    result = {"machine": f"{platform.node()} {cpu_model()} x{os.cpu_count()}", "rows": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
