"""What a run pays before and while its model starts, side by side in fresh processes (session 26).

    python benchmarks/model_start.py --rounds 4 --json out.json

Two comparisons, each alternated ``--rounds`` times (imports happen once per process, so every
sample is a new interpreter):

- **torchvision's import**: ``import torchvision`` against ``vid_assets.extractors.tv_import``
  (the same torchvision without ``torch._dynamo``, which its ``ops/roi_align.py`` imports), after
  ``import torch``; and whether Dynamo ended up imported.
- **decoding while the model loads** (tried in session 26 and not kept; RESULTS.md): the engine
  over the peer comparison's work (``tv:resnet50`` with random weights, 1 fps, batch 8, the ten 14-20 s 320x240 videos of ``benchmarks/peer.py``):
  load the model, then decode and embed (``inline``), against decoding on a helper thread while the
  model loads, inline after (``ahead``). Timed from the model's load to the last result.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

IMPORT_PROBE = """
import sys, time, json
import torch
t0 = time.perf_counter()
if sys.argv[1] == "tv_import":
    from vid_assets.extractors.tv_import import torchvision
else:
    import torchvision
print(json.dumps({"s": time.perf_counter() - t0, "dynamo": "torch._dynamo" in sys.modules}))
"""

ENGINE_PROBE = """
import glob, itertools, json, sys, threading, time
from vid_assets import engine
from vid_assets.feature_sets import FeatureSet
fs = FeatureSet.from_dict(
    "default",
    {"extractor": "tv:resnet50", "args": {"weights": None}, "sampling": {"fps": 1.0, "frames_per_clip": 1}},
)
cfg = fs.config()
sources = sorted(glob.glob(sys.argv[2] + "/*.mp4"))
t0 = time.perf_counter()
held, stop, helper = [], threading.Event(), None
if sys.argv[1] == "ahead":  # a helper thread decodes until the model is ready, then the feed is inline
    from vid_assets.clips.stream import iter_clip_batches

    feed = iter_clip_batches(sources, cfg.plan, cfg.clip, batch_clips=8, num_workers=0)

    def fill():
        for b in feed:
            held.append(b)
            if stop.is_set():
                return

    helper = threading.Thread(target=fill)
    helper.start()
model = fs.load(device="cpu", batch_size=8)
loaded = time.perf_counter()
if helper is not None:
    stop.set()
    helper.join()
ahead = len(held)
batches = itertools.chain(held, feed) if helper is not None else engine.decode_feed(sources, cfg, model)
results = list(engine.run(batches, model, cfg))
end = time.perf_counter()
print(json.dumps({"load_s": loaded - t0, "engine_s": end - loaded, "total_s": end - t0, "batches_ahead": ahead,
                  "ok": sum(r.ok for r in results), "images": sum(r.num_clips for r in results)}))
"""


def probe(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--skip-engine", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    from benchmarks.peer import prepare
    from vid_assets.devtools.host import cpu_model

    imports: dict[str, list[dict]] = {"plain": [], "tv_import": []}
    runs: dict[str, list[dict]] = {"inline": [], "ahead": []}
    folder = Path(tempfile.gettempdir()) / "vid_assets_peer_videos"
    if not args.skip_engine:
        prepare(folder, 10)
    for r in range(args.rounds):
        for how in imports:
            imports[how].append(probe(IMPORT_PROBE, how))
        for how in runs if not args.skip_engine else ():
            runs[how].append(probe(ENGINE_PROBE, how, str(folder)))
        print(f"round {r}: " + ", ".join(f"{k} {v[-1]['s']:.2f} s" for k, v in imports.items()), flush=True)
    med = statistics.median
    print("\n| torchvision import (after torch) | median s | Dynamo imported |\n| --- | ---: | --- |")
    for how, xs in imports.items():
        print(f"| {how} | {med(x['s'] for x in xs):.2f} | {xs[0]['dynamo']} |")
    if not args.skip_engine:
        print("\n| tv:resnet50, 10 videos | load s | engine s | load + engine s (each round) | batches ahead |")
        print("| --- | ---: | ---: | --- | ---: |")
        for how, xs in runs.items():
            totals = " / ".join(f"{x['total_s']:.1f}" for x in xs)
            row = f"| {how} | {med(x['load_s'] for x in xs):.2f} | {med(x['engine_s'] for x in xs):.2f} | {totals}"
            print(f"{row} | {med(x['batches_ahead'] for x in xs):.0f} |")
    result = {"machine": cpu_model() or platform.processor(), "rounds": args.rounds, "imports": imports, "runs": runs}
    if runs["ahead"]:
        pairs = zip(runs["inline"], runs["ahead"], strict=True)
        result["ahead_saved_s_median"] = med(a["total_s"] - b["total_s"] for a, b in pairs)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
