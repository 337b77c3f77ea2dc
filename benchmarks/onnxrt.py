"""PyTorch against ONNX Runtime as a frame model's CPU forward, side by side (session 27).

    python benchmarks/onnxrt.py --rounds 3 --json out.json

For each model (``tv:resnet50`` with random weights, the default ``efficientnet_lite0``), in one
process: the load with runtime ``torch``, with ``onnxruntime`` on an empty graph cache (the
export) and again on the filled one; then ``--rounds`` alternating passes of both over the same
64 uint8 frames at the model's input size in batches of 8 (``embed_frames``, preprocessing
included), and the largest difference between their features.
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

MODELS = {"tv:resnet50": {"weights": None}, "efficientnet_lite0": {}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    os.environ["VID_ASSETS_CACHE"] = tempfile.mkdtemp(prefix="vid_assets_onnxrt_")  # empty: the first load exports

    import numpy as np
    import torch

    from vid_assets.devtools.host import cpu_model
    from vid_assets.extractors import create_extractor

    rows = []
    for name, kwargs in MODELS.items():
        loads, exts = {}, {}
        for label, runtime in (
            ("torch", "torch"),
            ("onnxruntime_export", "onnxruntime"),
            ("onnxruntime", "onnxruntime"),
        ):
            torch.manual_seed(0)
            t0 = time.perf_counter()
            exts[runtime] = create_extractor(name, device="cpu", batch_size=8, runtime=runtime, **kwargs)
            loads[label] = time.perf_counter() - t0
        assert exts["onnxruntime"].config["runtime"] == "onnxruntime"
        size = exts["torch"].input_size
        frames = np.random.default_rng(0).integers(0, 256, (args.frames, size, size, 3), dtype=np.uint8)
        diff = np.abs(exts["torch"].embed_frames(frames)[0] - exts["onnxruntime"].embed_frames(frames)[0])
        rates = {"torch": [], "onnxruntime": []}
        for _ in range(args.rounds):
            for runtime, ext in exts.items():
                t0 = time.perf_counter()
                ext.embed_frames(frames)
                rates[runtime].append(args.frames / (time.perf_counter() - t0))
        med = {k: statistics.median(v) for k, v in rates.items()}
        rows.append(
            {
                "model": name,
                "load_s": {k: round(v, 3) for k, v in loads.items()},
                "images_per_s": {k: [round(r, 2) for r in v] for k, v in rates.items()},
                "onnxruntime_vs_torch": round(med["onnxruntime"] / med["torch"], 3),
                "max_abs_diff": float(diff.max()),
                "max_abs_feature": float(np.abs(exts["torch"].embed_frames(frames[:8])[0]).max()),
            }
        )
        r = rows[-1]
        print(
            f"{name:20s} torch {med['torch']:6.1f} img/s  onnxruntime {med['onnxruntime']:6.1f} img/s"
            f"  ratio {r['onnxruntime_vs_torch']:.2f}  load torch {loads['torch']:.2f} s,"
            f" export {loads['onnxruntime_export']:.2f} s, cached {loads['onnxruntime']:.2f} s"
            f"  max diff {r['max_abs_diff']:.2g} (of {r['max_abs_feature']:.3g})",
            flush=True,
        )
    result = {"machine": f"{platform.node()} {cpu_model()} x{os.cpu_count()}", "rounds": args.rounds, "models": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
