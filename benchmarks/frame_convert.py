"""Frame conversion: swscale scaling + converting in one pass vs ``decode.to_rgb`` (swscale RGB at the
source size, then torch's uint8 antialiased bilinear resize), per source size, one thread.

    python benchmarks/frame_convert.py [--json out.json] [--frames 90]

Also reports how far each result is from PIL's bilinear resize of the decoded RGB frame (the
preprocessing of a hand-written PIL/torchvision script): mean absolute difference in levels.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vid_assets.media.decode import scaled_size, to_rgb  # noqa: E402
from vid_assets.runtime.memory import tune_malloc  # noqa: E402
from vid_assets.samples import real_sample_paths, write_synthetic_video  # noqa: E402


def frames_of(path: Path, n: int) -> list[av.VideoFrame]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.codec_context.thread_count = 1
        return [f for _, f in zip(range(n), c.decode(s), strict=False)]


def best_ms(fn, frames, rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        rf = VideoReformatter()  # one context per video, as iter_frames does
        t0 = time.perf_counter()
        for f in frames:
            fn(f, rf)
        best = min(best, (time.perf_counter() - t0) / len(frames))
    return best * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=90)
    ap.add_argument("--short-side", type=int, default=256)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    tune_malloc()  # as in every process that builds an extractor
    tmp = Path(tempfile.mkdtemp(prefix="vid_assets_convert_"))
    sources = {
        f"synthetic {w}x{h}": write_synthetic_video(tmp / f"s{w}.mp4", seconds=4, fps=30, size=(w, h), seed=3)
        for w, h in ((320, 240), (640, 360), (1920, 1080))
    }
    sources |= {f"{k} (real)": Path(v) for k, v in real_sample_paths().items()}

    def swscale_scaled(f, rf):
        w, h = scaled_size(f.width, f.height, args.short_side)
        return rf.reformat(f, w, h, "rgb24", interpolation="BILINEAR", threads=1).to_ndarray()

    def new(f, rf):
        return to_rgb(f, args.short_side, rf)

    rows = []
    for name, path in sources.items():
        frames = frames_of(path, args.frames)
        t0 = time.perf_counter()
        frames_of(path, args.frames)
        decode_ms = (time.perf_counter() - t0) / len(frames) * 1e3
        w, h = scaled_size(frames[0].width, frames[0].height, args.short_side)
        pil = [
            np.asarray(Image.fromarray(f.to_ndarray(format="rgb24")).resize((w, h), Image.BILINEAR)).astype(int)
            for f in frames[:5]
        ]

        def off(fn, pil=pil, frames=frames):
            rf = VideoReformatter()
            return float(np.mean([np.abs(fn(f, rf).astype(int) - p).mean() for f, p in zip(frames, pil, strict=False)]))

        old_ms, new_ms = best_ms(swscale_scaled, frames), best_ms(new, frames)
        rows.append(
            {
                "source": name,
                "size": f"{frames[0].width}x{frames[0].height} -> {w}x{h}",
                "decode_ms": round(decode_ms, 3),
                "swscale_scaled_ms": round(old_ms, 3),
                "to_rgb_ms": round(new_ms, 3),
                "speedup": round(old_ms / new_ms, 2),
                "swscale_vs_pil_levels": round(off(swscale_scaled), 2),
                "to_rgb_vs_pil_levels": round(off(new), 2),
            }
        )
        r = rows[-1]
        print(
            f"{r['source']:<28} {r['size']:<22} decode {r['decode_ms']:6.3f}  swscale {r['swscale_scaled_ms']:6.3f}"
            f"  to_rgb {r['to_rgb_ms']:6.3f} ms/frame  x{r['speedup']:<5} | vs PIL: {r['swscale_vs_pil_levels']:5.2f}"
            f" / {r['to_rgb_vs_pil_levels']:.2f} levels"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": platform.processor() or platform.machine(), "rows": rows}, indent=2)
        )


if __name__ == "__main__":
    main()
