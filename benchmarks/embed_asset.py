"""The embeddings asset's own code path vs the bare model, on the CPU or a GPU.

    python benchmarks/embed_asset.py [--json out.json] [--rounds 6] [--batch 8] [--per-round 0]

On the 2-core VM: ``--rounds 20 --per-round 1 --bare-seconds 2.5`` (short rounds, drift cancels).

``stages.embed_videos`` (what the Dagster ``embeddings`` asset runs): clip tensors read from the
zarr artifacts in a background thread, queued passes, top-k labels, embeddings written back,
against ``bare`` (the forward on one pre-made batch, as in ``embed.py``). The decode and clips
stages run once, untimed. Rounds alternate a bare run and one ``embed_videos`` call over all videos.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embed import bare_input, forward_for  # noqa: E402  (benchmarks/embed.py: the same bare loop)

from vid_assets import stages  # noqa: E402
from vid_assets.clips import ClipSpec  # noqa: E402
from vid_assets.devtools.host import cpu_model  # noqa: E402
from vid_assets.extractors import create_extractor  # noqa: E402
from vid_assets.media import SamplingPlan, VideoRef  # noqa: E402
from vid_assets.samples import write_synthetic_video  # noqa: E402
from vid_assets.store import ArtifactStore  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--extractor", default="efficientnet_lite0")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--videos", type=int, default=2)
    ap.add_argument("--seconds-per-video", type=float, default=10.0)
    ap.add_argument("--bare-seconds", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--per-round", type=int, default=0, help="videos per embeddings call (0 = all)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    ext = create_extractor(args.extractor, device=args.device, batch_size=args.batch)
    tmp = Path(tempfile.mkdtemp(prefix="vid_assets_embed_asset_"))
    art = ArtifactStore(tmp / "artifacts")
    plan = SamplingPlan(fps=30, short_side=256)
    spec = ClipSpec(frames_per_clip=1, stride=1, crop_size=ext.input_size)
    keys = []
    for i in range(args.videos):
        path = write_synthetic_video(tmp / f"v{i}.mp4", seconds=args.seconds_per_video, fps=30, size=(320, 240), seed=i)
        ref = VideoRef.from_path(path)
        stages.decode_video(ref, plan, art)
        stages.build_clips(ref.key, spec, art)
        keys.append(ref.key)

    x = bare_input(ext, args.batch)

    def bare() -> float:
        n, elapsed = forward_for(ext, x, args.bare_seconds)
        return n / elapsed

    stages.embed_videos(keys, ext, art)  # warm-up (first pass, allocator)
    rows = []
    for r in range(args.rounds):
        b = bare()
        t0 = time.perf_counter()
        # one video per round (``--per-round 1``) keeps a round to a few seconds, so the VM's
        # drift lands on both sides of it
        batch = [keys[(r * args.per_round + i) % len(keys)] for i in range(args.per_round)] if args.per_round else keys
        res = stages.embed_videos(batch, ext, art)
        images = sum(v["clips"] for v in res.values())
        ips = images / (time.perf_counter() - t0)
        rows.append((b, ips))
        print(f"round {r}: bare {b:8.1f} img/s   embeddings asset {ips:8.1f} img/s   ratio {ips / b:.3f}", flush=True)
    ratios = [p / b for b, p in rows]
    result = {
        "extractor": ext.id,
        "device": str(ext.device),
        "machine": cpu_model(),
        "batch": args.batch,
        "videos": f"{args.videos} x {args.seconds_per_video:g} s 320x240, every frame, centre crop",
        "bare_images_per_s": round(float(np.median([b for b, _ in rows])), 1),
        "asset_images_per_s": round(float(np.median([p for _, p in rows])), 1),
        "asset_vs_bare": round(float(np.median(ratios)), 3),
        "method": f"{args.rounds} rounds of ({args.bare_seconds:g} s bare, then embed_videos over "
        f"{args.per_round or args.videos} video(s)); headline = median of the per-round ratios",
        "rounds_ratio_iqr": [round(float(q), 3) for q in np.percentile(ratios, [25, 75])],
        "rounds_ratio": [round(q, 3) for q in ratios],
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
