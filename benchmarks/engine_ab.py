"""The engine's speed at two commits, side by side: did a refactor cost anything?

    python benchmarks/engine_ab.py --a /tmp/wt_before --b . --rounds 6 --json out.json

Each side is a checkout (a ``git worktree``); every round runs ``engine.extract`` of the same
videos (EfficientNet-Lite0 on the CPU, the product's default 2-fps plan, model loaded before the
clock) once per side in a fresh interpreter, the order alternating, so the host's drift falls on
both. Prints a table and the median ratio ``b_vs_a`` (> 1: b is faster).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

RUN = """
import json, sys, time
sys.path.insert(0, {root!r})
from vid_assets import engine
from vid_assets.extractors import get_extractor
from vid_assets.fit import config_for
ext = get_extractor("efficientnet_lite0", device="cpu")
ext.batch_size = 16
config = config_for(ext)
videos = {videos!r}
list(engine.extract(videos[:1], ext, config))  # warm: first-pass allocations
t0 = time.perf_counter()
results = list(engine.extract(videos, ext, config))
took = time.perf_counter() - t0
assert all(r.ok for r in results), [r.error for r in results]
print(json.dumps({{"seconds": took, "clips": sum(r.num_clips for r in results)}}))
"""


def run(root: str, videos: list[str]) -> dict:
    code = RUN.format(root=str(Path(root).resolve()), videos=videos)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="checkout A (before)")
    ap.add_argument("--b", default=".", help="checkout B (after)")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(args.b).resolve()))
    from vid_assets.samples import write_synthetic_video

    folder = Path(tempfile.gettempdir()) / "vid_assets_engine_ab"
    folder.mkdir(exist_ok=True)
    videos = []
    for i in range(args.videos):
        path = folder / f"v{i:02d}_{args.seconds:g}s.mp4"
        if not path.exists():
            write_synthetic_video(path, seconds=args.seconds, fps=30, size=(320, 240), seed=i)
        videos.append(str(path))
    rows = []
    for r in range(args.rounds):
        order = ("a", "b") if r % 2 == 0 else ("b", "a")
        got = {side: run(getattr(args, side), videos) for side in order}
        rows.append({"round": r, **{f"{s}_s": round(got[s]["seconds"], 3) for s in "ab"}, "clips": got["a"]["clips"]})
        print(f"round {r}: a {got['a']['seconds']:.2f} s, b {got['b']['seconds']:.2f} s ({got['a']['clips']} clips)")
    ratio = statistics.median(row["a_s"] / row["b_s"] for row in rows)
    result = {
        "a": str(args.a),
        "b": str(args.b),
        "median_a_s": statistics.median(row["a_s"] for row in rows),
        "median_b_s": statistics.median(row["b_s"] for row in rows),
        "b_vs_a": round(ratio, 3),
        "rounds": rows,
    }
    print(
        f"| side | median s |\n| --- | ---: |\n| a | {result['median_a_s']:.2f} |\n| b | {result['median_b_s']:.2f} |"
    )
    print(f"b_vs_a = {ratio:.3f} (median of per-round ratios; > 1: b is faster)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
