"""Where a batch's device time goes on the ``--device-convert`` path, and is fp16 conversion exact enough?

    python benchmarks/device_convert.py --json out.json [--batch 300] [--size 320x240] [--model vit_base_patch16_224]

One batch of real decoded YUV 4:2:0 planes (a synthetic H.264 video, 1 frame per clip, centre
crop) is timed on the device with CUDA events, median of ``--reps``: the host->device upload,
``clips_from_yuv`` in float32 and float16 by both methods (``interpolate``: resize whole frames,
then crop; ``matmul``: resampling matrices, the crops only, CUDA's default since session 10), the
model's ``preprocess`` and its forward pass (bf16, eager). The sum says how much of a batch's
stream time is not the model. It also compares the float16 and float32 conversions (and the CPU's
float32) pixel by pixel. Without CUDA it only compares the methods and times them on the CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vid_assets.clips import ClipSpec  # noqa: E402
from vid_assets.clips.device import clips_from_yuv  # noqa: E402
from vid_assets.clips.stream import iter_video_batches  # noqa: E402
from vid_assets.extractors import create_extractor  # noqa: E402
from vid_assets.media.plan import SamplingPlan  # noqa: E402
from vid_assets.runtime.transfer import upload  # noqa: E402
from vid_assets.samples import write_synthetic_video  # noqa: E402


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


METHODS = ("interpolate", "matmul")


def cpu_ms(planes, info, spec, short_side: int, method: str, reps: int = 5) -> float:
    """Median wall ms of one conversion on the CPU (float32), after a warm-up."""
    clips_from_yuv(planes, info, spec, short_side, device="cpu", method=method)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        clips_from_yuv(planes, info, spec, short_side, device="cpu", method=method)
        times.append((time.perf_counter() - t0) * 1e3)
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

    ref = clips_from_yuv(planes, info, spec, plan.short_side, device="cpu", method="interpolate").numpy().astype(int)
    mm = clips_from_yuv(planes, info, spec, plan.short_side, device="cpu", method="matmul").numpy().astype(int)
    result |= {"cpu_matmul_vs_interpolate_max": int(np.abs(mm - ref).max())}
    result |= {
        f"cpu_{m}_ms_per_frame": round(cpu_ms(planes, info, spec, plan.short_side, m) / len(planes), 3) for m in METHODS
    }
    if cuda:
        dev = torch.device("cuda")
        name = torch.cuda.get_device_name(dev)
        on_dev = upload(planes, dev)

        def convert(method: str, dtype: torch.dtype) -> torch.Tensor:
            return clips_from_yuv(on_dev, info, spec, plan.short_side, dtype=dtype, method=method)

        result["device"] = name
        for method in METHODS:
            fp32 = convert(method, torch.float32).cpu().numpy().astype(int)
            fp16 = convert(method, torch.float16).cpu().numpy().astype(int)
            result |= {
                f"{method}_fp16_vs_fp32_max": int(np.abs(fp16 - fp32).max()),
                f"{method}_fp16_vs_fp32_mean": round(float(np.abs(fp16 - fp32).mean()), 4),
                f"{method}_cuda_fp32_vs_cpu_max": int(np.abs(fp32 - ref).max()),
                f"{method}_cuda_fp16_vs_cpu_mean": round(float(np.abs(fp16 - ref).mean()), 4),
            }
        ext = create_extractor(f"timm:{args.model}", pretrained=False, device="cuda", batch_size=args.batch)
        clips = clips_from_yuv(on_dev, info, spec, plan.short_side)
        frames = clips.reshape(-1, 224, 224, 3)
        x = ext.preprocess(frames)
        times = {"upload_ms": cuda_ms(lambda: upload(planes, dev), args.reps)}
        for method in METHODS:
            for dtype in (torch.float32, torch.float16):
                key = f"convert_{method}_{str(dtype).split('.')[-1]}_ms"
                times[key] = cuda_ms(lambda m=method, d=dtype: convert(m, d), args.reps)
        times["preprocess_ms"] = cuda_ms(lambda: ext.preprocess(frames), args.reps)
        with torch.inference_mode():
            times["forward_ms"] = cuda_ms(lambda: ext._features(x), args.reps)
        times = {k: round(v, 3) for k, v in times.items()}
        model = times["forward_ms"]
        for method in METHODS:
            host = times[f"convert_{method}_float16_ms"] + times["preprocess_ms"]
            times[f"not_model_share_{method}"] = round(host / (model + host), 3)
        result |= times
    else:
        result["note"] = "no CUDA: only the CPU comparison and CPU timings ran"
    for k, v in result.items():
        print(f"{k:<24}  {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
