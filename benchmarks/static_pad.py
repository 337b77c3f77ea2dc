"""EfficientNet-Lite0's forward with TF "same" padding done at run time (``F.pad`` before each
stride-2 conv, as timm runs it) vs folded into the conv (``Extractor(static_pad=True)``, the
default): the two models alternate in rounds in one process, batch 8, on the CPU.

    python benchmarks/static_pad.py --json out.json [--rounds 12] [--seconds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from vid_assets.devtools.host import describe_host
from vid_assets.extractors import create_extractor


def rate(ext, x: torch.Tensor, seconds: float) -> float:
    """Images per second of the bare forward (normalised input already made) for ``seconds``."""
    n, t0 = 0, time.perf_counter()
    with torch.inference_mode():
        while time.perf_counter() - t0 < seconds:
            ext._features(x)
            n += x.shape[0]
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    variants = {
        "run-time F.pad": create_extractor("efficientnet_lite0", device="cpu", static_pad=False),
        "padding in the conv": create_extractor("efficientnet_lite0", device="cpu"),
    }
    assert "same_padding_static" in variants["padding in the conv"].config
    pixels = torch.randint(
        0, 256, (args.batch, 224, 224, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    x = variants["run-time F.pad"].preprocess(pixels)
    with torch.inference_mode():
        a, b = (v._features(x) for v in variants.values())
    max_diff = float((a - b).abs().max())
    rates: dict[str, list[float]] = {k: [] for k in variants}
    for v in variants.values():
        rate(v, x, 1.0)  # warm-up
    for r in range(args.rounds):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in order:
            rates[name].append(rate(variants[name], x, args.seconds))
    ratios = [p / q for p, q in zip(rates["padding in the conv"], rates["run-time F.pad"], strict=True)]
    print(f"| variant | img/s (median of {args.rounds}) |\n| --- | ---: |")
    for name, rs in rates.items():
        print(f"| {name} | {statistics.median(rs):.1f} |")
    print(f"speed-up per round: median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})")
    print(f"max |features| difference: {max_diff:.2e}")
    if args.json:
        out = {"host": describe_host(), "batch": args.batch, "rates": rates, "ratios": ratios, "max_diff": max_diff}
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
