"""Preprocessing of a uint8 batch: the row-wise form ``Extractor.preprocess`` uses on the CPU vs
the per-channel broadcast, on the CPU or a GPU.

    python benchmarks/preprocess.py [--json out.json] [--device cpu|cuda] [--batch 8] [--repeats 5]

Both compute ``uint8 * scale + shift`` into a channels_last float32 ``[N, 3, S, S]``. The broadcast
form applies ``[1, 3, 1, 1]`` constants over the channels_last view, whose innermost dimension is
the 3 channels (on the CPU: one ``addcmul``, the session 5-7 code; elsewhere: cast, ``mul_``,
``add_``, still the accelerator path); the row form works on rows of ``S * 3`` interleaved values
with the constants repeated along the row. Alternating repeats, ms per batch (device-synchronised),
and the largest difference between the two. On a GPU host, ``--batch 300`` matches the pipeline.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from embed import report  # noqa: E402  (benchmarks/embed.py: print the table, write the JSON)

from vid_assets.devtools.host import describe_host  # noqa: E402
from vid_assets.extractors import create_extractor  # noqa: E402


def per_channel_broadcast(ext, pixels: torch.Tensor) -> torch.Tensor:
    """``[1, 3, 1, 1]`` constants over the NCHW (channels_last) view."""
    v = pixels.permute(0, 3, 1, 2)
    if ext.device.type == "cpu":
        return torch.addcmul(ext._shift, v, ext._scale)
    return v.float().mul_(ext._scale).add_(ext._shift)


def ms_per_call(fn, device: torch.device, seconds: float = 1.0) -> float:
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(5):
        fn()
    sync()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    sync()
    return (time.perf_counter() - t0) / n * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    ext = create_extractor("efficientnet_lite0", device=args.device, batch_size=args.batch)
    s = ext.input_size
    px = torch.randint(0, 256, (args.batch, s, s, 3), dtype=torch.uint8, device=ext.device)
    old, new = per_channel_broadcast(ext, px), ext._normalise_rows(px)
    rows = []
    for _ in range(args.repeats):
        rows.append(
            (
                ms_per_call(lambda: per_channel_broadcast(ext, px), ext.device),
                ms_per_call(lambda: ext._normalise_rows(px), ext.device),
            )
        )
    a = np.asarray(rows)
    result = describe_host() | {
        "device": str(ext.device),
        "device_name": torch.cuda.get_device_name(ext.device) if ext.device.type == "cuda" else "",
        "batch": args.batch,
        "size": s,
        "torch_threads": torch.get_num_threads(),
        "per_channel_broadcast_ms": round(float(np.median(a[:, 0])), 3),
        "row_pattern_ms": round(float(np.median(a[:, 1])), 3),
        "max_abs_difference": float((old - new).abs().max()),
        "preprocess_is_row_pattern": bool(torch.equal(ext.preprocess(px), new)),
        "channels_last": new.is_contiguous(memory_format=torch.channels_last),
        "repeats_ms": [[round(float(x), 3) for x in r] for r in rows],
    }
    report(result, args.json)


if __name__ == "__main__":
    main()
