"""Decoder backends next to a CPU model, compared in one process.

    python benchmarks/decode_backends.py [--json out.json] [--rounds 16] [--segment-seconds 2]
        [--backends inline,threads,processes] [--workers 2] [--video-dir DIR]

Each round runs, for every backend in turn, ``--segment-seconds`` of the bare forward and then
``--segment-seconds`` of the pipeline fed by that backend (decode -> clips -> the same forward),
every backend's stream carrying on across rounds. Comparing backends inside one process and one
round cancels the VM's drift, which runs of ``embed.py`` (one backend per process) do not: there,
single runs of the same code spread by +-0.02. Reported per backend: the median over rounds of
pipeline/bare and of the host overhead per image, 1/pipeline - 1/bare, in ms.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embed import bare_input, forward_for, prepare_videos, stream_factory  # noqa: E402

from vid_assets.devtools.host import describe_host  # noqa: E402
from vid_assets.extractors import create_extractor, submit_clips  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--extractor", default="efficientnet_lite0")
    ap.add_argument("--batch", type=int, default=8, help="images per forward pass")
    ap.add_argument("--decode-batch", type=int, default=32)
    ap.add_argument("--backends", default="inline,threads", help="inline, threads, processes")
    ap.add_argument("--workers", type=int, default=2, help="decoders for threads/processes")
    ap.add_argument("--videos", type=int, default=2)
    ap.add_argument("--seconds-per-video", type=float, default=10.0)
    ap.add_argument("--segment-seconds", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=16)
    ap.add_argument("--video-dir", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    sources = prepare_videos(args.video_dir, args.videos, args.seconds_per_video, "320x240")
    ext = create_extractor(args.extractor, device="cpu", batch_size=args.batch)
    names = args.backends.split(",")

    def endless(name: str):
        workers, backend = (0, "auto") if name == "inline" else (args.workers, name)
        make = stream_factory(ext, sources, args.decode_batch, workers, 30.0, backend, pin=False)
        while True:
            yield from make()

    streams = {n: endless(n) for n in names}
    x = bare_input(ext, args.batch)
    for s in streams.values():  # open every stream and run one pass before timing
        submit_clips(ext, next(s)).result()
    rows: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names:
            n, bare_s = forward_for(ext, x, args.segment_seconds)
            images, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < args.segment_seconds:
                pixels = next(streams[name])
                submit_clips(ext, pixels).result()
                images += int(pixels.shape[0] * pixels.shape[1] * pixels.shape[2])
            pipe_s = time.perf_counter() - t0
            rows[name].append(((images / pipe_s) / (n / bare_s), 1e3 * (pipe_s / images - bare_s / n)))
        print(f"round {r}: " + "  ".join(f"{k} {v[-1][0]:.3f}" for k, v in rows.items()), flush=True)

    result = describe_host() | {
        "extractor": ext.id,
        "batch": args.batch,
        "decode_batch": args.decode_batch,
        "method": f"one process, {args.rounds} rounds x backends x ({args.segment_seconds:g} s bare + "
        f"{args.segment_seconds:g} s pipeline)",
        "video": f"{args.videos} x {args.seconds_per_video:g} s 320x240 H.264 30 fps, every frame",
    }
    for name, v in rows.items():
        a = np.asarray(v)
        result[name] = {
            "pipeline_vs_bare_median": round(float(np.median(a[:, 0])), 3),
            "pipeline_vs_bare_iqr": [round(float(q), 3) for q in np.percentile(a[:, 0], [25, 75])],
            "overhead_ms_per_image_median": round(float(np.median(a[:, 1])), 3),
            "rounds": [round(float(r), 3) for r in a[:, 0]],
        }
        print(
            f"{name:10s} pipeline_vs_bare {result[name]['pipeline_vs_bare_median']:.3f} "
            f"(IQR {result[name]['pipeline_vs_bare_iqr']})  host overhead "
            f"{result[name]['overhead_ms_per_image_median']:.3f} ms/image"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
