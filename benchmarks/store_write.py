"""What storing one video costs a run: the write, and its four checks read back or on what was written.

    python benchmarks/store_write.py --json out.json [--videos 16] [--rounds 5]

A run stores each video as it finishes (``results.store_result``: one Zarr v3 group of 5 small
arrays, written atomically) and reports the store's four checks for it. The checks used to read
the video back from the store (``FeatureStore.check``); a run now checks the arrays it handed to
the store, in their stored dtype (``FeatureStore.check_written``; a test holds the two equal).
This times the three per video on the engine's real results for 10-s 320x240 videos
(EfficientNet-Lite0, the default plan), alternating in each round, and prints the median.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backfill import DEFAULT_PLAN, prepare  # noqa: E402

from vid_assets.devtools.host import cpu_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default=None)
    ap.add_argument("--videos", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--video-dir", default=str(Path(tempfile.gettempdir()) / "vid_assets_backfill_videos"))
    args = ap.parse_args()
    from vid_assets import engine
    from vid_assets.defs.resources import ExtractorResource, SamplingResource
    from vid_assets.media import VideoRef
    from vid_assets.results import store_result
    from vid_assets.store import FeatureStore

    paths = prepare(Path(args.video_dir) / "10s_320x240", args.videos, 10.0, (320, 240))
    ext = ExtractorResource(device="cpu").load()
    config = SamplingResource(**DEFAULT_PLAN).config(ext)
    refs, info = [VideoRef.from_path(p) for p in paths], ext.describe()
    results = list(engine.extract([str(p) for p in paths], ext, config))
    ms: dict[str, list[float]] = {"write": [], "check_read_back": [], "check_written": []}
    with tempfile.TemporaryDirectory(prefix="vid_assets_store_write_") as tmp:
        for r in range(args.rounds):
            store = FeatureStore(Path(tmp) / f"round{r}.zarr")
            t0 = time.perf_counter()
            stored = [store_result(refs[x.index], x, store, info, config) for x in results]
            t1 = time.perf_counter()
            back = [store.check(refs[x.index].key) for x in results]
            t2 = time.perf_counter()
            attrs = [store.video_attrs(refs[x.index].key) for x in results]
            t3 = time.perf_counter()
            written = [store.check_written(x.features, x.timestamps, a) for x, a in zip(results, attrs, strict=True)]
            t4 = time.perf_counter()
            assert back == written == [s.checks for s in stored], "checks on what was written differ from read back"
            for name, took in (("write", t1 - t0), ("check_read_back", t2 - t1), ("check_written", t4 - t3)):
                ms[name].append(took / len(results) * 1e3)
    result = {
        "machine": f"{platform.node()} {cpu_model()} x{os.cpu_count()}",
        "videos": len(results),
        "rounds": args.rounds,
        **{f"{k}_ms_per_video": statistics.median(v) for k, v in ms.items()},
        "samples_ms": ms,
    }
    print(f"{'per video (median of rounds)':<30} ms")
    for k in ms:
        print(f"{k:<30} {result[k + '_ms_per_video']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
