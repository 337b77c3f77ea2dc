"""Two feature sets that share a plan: one decode feeding both models vs a run per set (issue 22).

    python benchmarks/shared_decode.py --json out.json [--videos 4] [--seconds 20] [--size 1280x720]

Set A is the default EfficientNet-Lite0 (2 fps, 2-frame clips, 256-px frames); set B a small
random-init ViT per frame at 64 px (the same 2-fps plan, another short side). "separate" runs the
engine once per set (two decodes of every video, as two Dagster steps did); "shared" runs
``engine.run_many`` over one ``decode_feed(..., also=...)``. Rounds alternate the two orders;
the ratio is separate / shared wall time (> 1: sharing is faster).
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vid_assets import engine  # noqa: E402
from vid_assets.extractors import get_extractor  # noqa: E402
from vid_assets.fit import config_for, fit_config  # noqa: E402
from vid_assets.samples import write_synthetic_video  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--video-dir", default="/tmp/vid_assets_shared_decode")
    ap.add_argument("--json")
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))
    folder = Path(args.video_dir)
    sources = []
    for i in range(args.videos):
        path = folder / f"v{i}_{h}p.mp4"
        if not path.exists():
            write_synthetic_video(path, seconds=args.seconds, fps=30, size=(w, h), seed=i, threads=0)
        sources.append(str(path))
    import timm
    from timm.models import save_for_hf

    vit_dir = Path(tempfile.mkdtemp()) / "vit"
    args_vit = {"depth": 1, "embed_dim": 64, "num_heads": 2, "img_size": 64}
    save_for_hf(
        timm.create_model("vit_base_patch16_224", pretrained=False, **args_vit), str(vit_dir), model_args=args_vit
    )
    a = get_extractor("efficientnet_lite0", device="cpu")
    b = get_extractor(f"local-dir:{vit_dir}", device="cpu")
    b.batch_size = 16
    ca, cb = config_for(a), fit_config(b, frames_per_clip=1)
    assert engine.shares_decode(ca, cb)

    def separate() -> float:
        t0 = time.perf_counter()
        for model, config in ((a, ca), (b, cb)):
            for _ in engine.extract(sources, model, config):
                pass
        return time.perf_counter() - t0

    def shared() -> float:
        t0 = time.perf_counter()
        feed = engine.decode_feed(sources, ca, a, also=[(b, cb)])
        for _ in engine.run_many(feed, [(a, ca), (b, cb)]):
            pass
        return time.perf_counter() - t0

    shared()  # warm-up: model passes, allocator
    rows = []
    for r in range(args.rounds):
        order = (separate, shared) if r % 2 == 0 else (shared, separate)
        times = {f.__name__: f() for f in order}
        rows.append({k: round(v, 2) for k, v in times.items()})
        print(rows[-1], flush=True)
    sep = min(r["separate"] for r in rows)
    sha = min(r["shared"] for r in rows)
    res = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "videos": args.videos,
        "seconds_per_video": args.seconds,
        "size": args.size,
        "rounds": rows,
        "separate_s": sep,
        "shared_s": sha,
        "shared_decode_speedup": round(sep / sha, 3),
    }
    print(json.dumps(res, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
