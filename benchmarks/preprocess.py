"""CPU preprocessing of a uint8 batch: ``Extractor.preprocess`` vs the per-channel broadcast it replaced.

    python benchmarks/preprocess.py [--json out.json] [--batch 8] [--size 224] [--repeats 5]

Both compute ``uint8 * scale + shift`` into a channels_last float32 ``[N, 3, S, S]``. The old form
broadcasts ``[1, 3, 1, 1]`` constants over the channels_last view, whose innermost dimension is the
3 channels; the current one works on rows of ``S * 3`` interleaved values with the constants
repeated along the row. Alternating repeats, ms per batch, and whether the outputs are identical.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vid_assets.devtools.host import describe_host  # noqa: E402
from vid_assets.extractors import create_extractor  # noqa: E402


def per_channel_broadcast(ext, pixels: torch.Tensor) -> torch.Tensor:
    """The session 5-7 code: one ``addcmul`` over the NCHW (channels_last) view."""
    return torch.addcmul(ext._shift, pixels.permute(0, 3, 1, 2), ext._scale)


def ms_per_call(fn, seconds: float = 1.0) -> float:
    for _ in range(5):
        fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return (time.perf_counter() - t0) / n * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    ext = create_extractor("efficientnet_lite0", device="cpu", batch_size=args.batch)
    s = ext.input_size
    px = torch.randint(0, 256, (args.batch, s, s, 3), dtype=torch.uint8)
    old, new = per_channel_broadcast(ext, px), ext.preprocess(px)
    rows = []
    for _ in range(args.repeats):
        rows.append((ms_per_call(lambda: per_channel_broadcast(ext, px)), ms_per_call(lambda: ext.preprocess(px))))
    a = np.asarray(rows)
    result = describe_host() | {
        "batch": args.batch,
        "size": s,
        "torch_threads": torch.get_num_threads(),
        "per_channel_broadcast_ms": round(float(np.median(a[:, 0])), 3),
        "row_pattern_ms": round(float(np.median(a[:, 1])), 3),
        "identical": bool(torch.equal(old, new)),
        "channels_last": new.is_contiguous(memory_format=torch.channels_last),
        "repeats_ms": [[round(float(x), 3) for x in r] for r in rows],
    }
    for k, v in result.items():
        print(f"{k:<26} {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
