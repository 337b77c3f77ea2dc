"""Decode engine speed and memory vs the naive loop and vs the physical limit.

    python benchmarks/decode.py --json out.json [--quick]

Exact sampling cannot skip frames that later frames depend on, so the limit is "decode only the
frames decode order requires, convert only the frames you keep". Measured here:

- 60 s 1080p H.264 (GOP 60) at 1 fps and 4 fps: ours (``iter_frames``: scale + RGB in FFmpeg for
  kept frames only, 256 px short side) vs the naive loop users write today (decode every frame,
  convert every frame to full-size RGB, keep every n-th) vs decode-only of every frame (the limit
  when every GOP holds a sample). VP9 and HEVC variants of the same.
- 16 frames spread over a 10-minute 720p H.264 with GOP 250: seek fast path vs sequential.
- Peak RSS decoding a 1-minute vs a 2-hour low-resolution video (separate processes).

Test videos come from FFmpeg's ``testsrc2`` (lavfi), encoded once into ``--cache`` (default
benchmarks/out/videos).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import av

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vid_assets.media import DecodeStats, SamplingPlan, iter_frames  # noqa: E402


def make_video(path: Path, seconds: float, fps: int, size: str, codec: str, gop: int, pix_fmt="yuv420p") -> Path:
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp" + path.suffix)
    w, h = map(int, size.split("x"))
    src = av.open(f"testsrc2=size={size}:rate={fps}:duration={seconds}", format="lavfi")
    with av.open(str(tmp), "w") as out:
        s = out.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        opts = {"g": str(gop)}
        if codec in ("libx264", "libx265"):
            opts |= {"preset": "ultrafast", "keyint_min": str(gop), "sc_threshold": "0"}
            if codec == "libx265":
                opts = {
                    "preset": "ultrafast",
                    "x265-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:log-level=none",
                }
        if codec == "libvpx-vp9":
            opts |= {"deadline": "realtime", "cpu-used": "8", "row-mt": "1"}
            s.codec_context.gop_size = gop
        s.options = opts
        for frame in src.decode(video=0):
            frame.pts = None
            for p in s.encode(frame.reformat(format=pix_fmt)):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    src.close()
    tmp.rename(path)
    return path


def naive(path: Path, keep_every: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    kept = 0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for i, frame in enumerate(c.decode(s)):
            img = frame.to_ndarray(format="rgb24")  # every frame converted, full size
            if i % keep_every == 0:
                kept += 1
                _ = img
    return time.perf_counter() - t0, kept


def decode_only(path: Path) -> float:
    t0 = time.perf_counter()
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for _ in c.decode(s):
            pass
    return time.perf_counter() - t0


def ours(path: Path, plan: SamplingPlan, seek: str = "auto") -> tuple[float, DecodeStats]:
    stats = DecodeStats()
    t0 = time.perf_counter()
    for _ in iter_frames(path, plan, seek=seek, stats=stats, time_budget_s=None):
        pass
    return time.perf_counter() - t0, stats


def best(fn, repeat: int):
    runs = [fn() for _ in range(repeat)]
    return min(runs, key=lambda r: r[0] if isinstance(r, tuple) else r)


RSS_CHILD = """
import resource, sys
sys.path.insert(0, {root!r})
from vid_assets.media import SamplingPlan, iter_frames
n = sum(1 for _ in iter_frames({path!r}, SamplingPlan.at_fps(1.0), time_budget_s=None))
print(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_kb(path: Path) -> tuple[int, int]:
    code = RSS_CHILD.format(root=str(Path(__file__).resolve().parents[1]), path=str(path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), int(out[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default=None)
    ap.add_argument("--cache", default=str(Path(__file__).resolve().parent / "out" / "videos"))
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="shorter videos (smoke run)")
    args = ap.parse_args()
    cache = Path(args.cache)
    q = args.quick
    dense_s, sparse_s, long_s = (10, 60, 600) if q else (60, 600, 7200)
    res: dict = {"machine": f"{platform.machine()} {os.cpu_count()} cores", "pyav": av.__version__}
    rows = []

    for codec, ext in (("libx264", "mp4"), ("libvpx-vp9", "webm"), ("libx265", "mp4")):
        tag = {"libx264": "h264", "libvpx-vp9": "vp9", "libx265": "hevc"}[codec]
        path = make_video(cache / f"{tag}_1080p_{dense_s}s_gop60.{ext}", dense_s, 30, "1920x1080", codec, 60)
        limit = best(lambda p=path: decode_only(p), args.repeat)
        for fps in (1, 4):
            t_naive, _ = best(lambda p=path, f=fps: naive(p, 30 // f), args.repeat)
            t_ours, st = best(lambda p=path, f=fps: ours(p, SamplingPlan.at_fps(f)), args.repeat)
            row = {
                "video": f"{tag} 1080p {dense_s}s GOP60",
                "fps": fps,
                "naive_s": round(t_naive, 3),
                "ours_s": round(t_ours, 3),
                "decode_only_s": round(limit, 3),
                "speedup_vs_naive": round(t_naive / t_ours, 2),
                "vs_limit": round(limit / t_ours, 3),
                "kept": st.kept,
                "decoded": st.decoded,
                "seeks": st.seeks,
            }
            rows.append(row)
            if tag == "h264":
                res[f"speedup_vs_naive_{fps}fps"] = row["speedup_vs_naive"]
                res[f"vs_limit_{fps}fps"] = row["vs_limit"]
            else:
                res[f"{tag}_speedup_vs_naive_{fps}fps"] = row["speedup_vs_naive"]
                res[f"{tag}_vs_limit_{fps}fps"] = row["vs_limit"]

    sparse = make_video(cache / f"h264_720p_{sparse_s}s_gop250.mp4", sparse_s, 30, "1280x720", "libx264", 250)
    plan = SamplingPlan.segments(sparse_s / 16, 1)  # 16 frames spread uniformly
    t_seq, st_seq = best(lambda: ours(sparse, plan, seek="never"), 1)
    t_seek, st_seek = best(lambda: ours(sparse, plan, seek="auto"), args.repeat)
    res["sparse_speedup_vs_sequential"] = round(t_seq / t_seek, 1)
    rows.append(
        {
            "video": f"h264 720p {sparse_s}s GOP250, 16 frames",
            "sequential_s": round(t_seq, 3),
            "seek_s": round(t_seek, 3),
            "decoded_sequential": st_seq.decoded,
            "decoded_seek": st_seek.decoded,
            "seeks": st_seek.seeks,
        }
    )

    short = make_video(cache / "h264_160x120_60s.mp4", 60, 10, "160x120", "libx264", 250)
    long = make_video(cache / f"h264_160x120_{long_s}s.mp4", long_s, 10, "160x120", "libx264", 250)
    (n1, rss1), (n2, rss2) = peak_rss_kb(short), peak_rss_kb(long)
    res |= {"rss_1min_kb": rss1, f"rss_{long_s}s_kb": rss2, "rss_ratio_2h_vs_1min": round(rss2 / rss1, 3)}
    rows.append(
        {
            "video": "160x120 10 fps, 1 fps sampling",
            "frames_1min": n1,
            "frames_long": n2,
            "rss_1min_mb": round(rss1 / 1024, 1),
            "rss_long_mb": round(rss2 / 1024, 1),
        }
    )

    res["rows"] = rows
    for r in rows:
        print("  ".join(f"{k}={v}" for k, v in r.items()))
    print(json.dumps({k: v for k, v in res.items() if k != "rows"}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
