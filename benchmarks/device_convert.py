"""Where a batch's device time goes on the ``--device-convert`` path, and is fp16 conversion exact enough?

    python benchmarks/device_convert.py --json out.json [--batch 300] [--size 320x240] [--model vit_base_patch16_224]

One batch of real decoded YUV 4:2:0 planes (a synthetic H.264 video, 1 frame per clip, centre
crop) is timed on the device with CUDA events, median of ``--reps``: the host->device upload,
``clips_from_yuv`` in float32 and float16, the model's ``preprocess`` and its forward pass (bf16,
eager). The sum says how much of a batch's stream time is not the model. It also compares the
float16 and float32 conversions (and the CPU's float32) pixel by pixel. Needs CUDA; on a CPU host it
only runs the comparison against the CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vid_assets.clips import ClipSpec  # noqa: E402
from vid_assets.clips.device import clips_from_yuv  # noqa: E402
from vid_assets.clips.stream import iter_video_batches  # noqa: E402
from vid_assets.extractors import create_extractor  # noqa: E402
from vid_assets.media.plan import SamplingPlan  # noqa: E402
from vid_assets.samples import write_synthetic_video  # noqa: E402
from vid_assets.transfer import upload  # noqa: E402


def cuda_ms(fn, reps: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=300)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--model", default="vit_base_patch16_224")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    w, h = map(int, args.size.split("x"))
    path = Path(tempfile.mkdtemp(prefix="vid_assets_conv_")) / "v.mp4"
    write_synthetic_video(path, seconds=args.batch / 30 + 1, fps=30, size=(w, h), seed=1)
    plan, spec = SamplingPlan(fps=30, short_side=256), ClipSpec(frames_per_clip=1, stride=1, crop_size=224)
    cuda = torch.cuda.is_available()
    batch = next(iter_video_batches(str(path), 0, plan, spec, args.batch, pin=cuda, device_convert=True))
    planes, info = batch.pixels, batch.color
    result: dict = {"batch": len(planes), "size": args.size, "planes_mb": round(planes.numel() / 1e6, 1)}

    ref = clips_from_yuv(planes, info, spec, plan.short_side, device="cpu").numpy().astype(int)
    if cuda:
        dev = torch.device("cuda")
        name = torch.cuda.get_device_name(dev)
        on_dev = upload(planes, dev)
        fp32 = clips_from_yuv(on_dev, info, spec, plan.short_side, dtype=torch.float32).cpu().numpy().astype(int)
        fp16 = clips_from_yuv(on_dev, info, spec, plan.short_side, dtype=torch.float16).cpu().numpy().astype(int)
        result |= {
            "device": name,
            "fp16_vs_fp32_max": int(np.abs(fp16 - fp32).max()),
            "fp16_vs_fp32_mean": round(float(np.abs(fp16 - fp32).mean()), 4),
            "cuda_fp32_vs_cpu_max": int(np.abs(fp32 - ref).max()),
            "cuda_fp16_vs_cpu_mean": round(float(np.abs(fp16 - ref).mean()), 4),
        }
        ext = create_extractor(f"timm:{args.model}", pretrained=False, device="cuda", batch_size=args.batch)
        clips = clips_from_yuv(on_dev, info, spec, plan.short_side)
        frames = clips.reshape(-1, 224, 224, 3)
        x = ext.preprocess(frames)
        times = {
            "upload_ms": cuda_ms(lambda: upload(planes, dev), args.reps),
            "convert_fp32_ms": cuda_ms(
                lambda: clips_from_yuv(on_dev, info, spec, plan.short_side, dtype=torch.float32), args.reps
            ),
            "convert_fp16_ms": cuda_ms(
                lambda: clips_from_yuv(on_dev, info, spec, plan.short_side, dtype=torch.float16), args.reps
            ),
            "preprocess_ms": cuda_ms(lambda: ext.preprocess(frames), args.reps),
        }
        with torch.inference_mode():
            times["forward_ms"] = cuda_ms(lambda: ext._features(x), args.reps)
        times = {k: round(v, 3) for k, v in times.items()}
        model = times["forward_ms"]
        times["not_model_share"] = round(
            (times["convert_fp16_ms"] + times["preprocess_ms"])
            / (model + times["convert_fp16_ms"] + times["preprocess_ms"]),
            3,
        )
        result |= times
    else:
        result["note"] = "no CUDA: only the CPU reference ran"
    for k, v in result.items():
        print(f"{k:<24}  {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
