"""Extractor throughput: the bare model on pre-made tensors vs the same model fed from decoded video.

    python benchmarks/embed.py --json out.json [--extractor efficientnet_lite0] [--device auto]
        [--batch 8 on CPU, 64] [--decode-batch 0] [--workers 0] [--precision auto] [--compile] [--fps 30]

"bare": a batch of already-normalised tensors on the device, forward only (features), repeated.
"pipeline": PyAV decode -> clips -> uint8 batches (inline, or from decoder threads/processes;
pinned on CUDA) -> device-side conversion/normalisation -> the same forward in passes of
``--batch`` images, features copied back to the host.
``pipeline_vs_bare`` = the median over rounds of (pipeline images/s / bare images/s), each round a
bare pass followed by a pipeline pass (steady state, after the first batch), so the host's drift
cancels within a round. On a CPU-only host the defaults interleave short segments instead
(``--batch 8 --videos 2 --seconds-per-video 10 --segment-seconds 2 --rounds 20``), the
configuration RESULTS.md records for the 2-core VM.
``benchmarks/decode_backends.py`` compares decoder backends within one process.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vid_assets.clips import ClipSpec  # noqa: E402
from vid_assets.clips.device import to_device_clips  # noqa: E402
from vid_assets.clips.stream import iter_clip_batches  # noqa: E402
from vid_assets.devtools.host import cpu_model  # noqa: E402
from vid_assets.extractors import create_extractor, iter_pipelined, submit_clips  # noqa: E402
from vid_assets.media import SamplingPlan  # noqa: E402
from vid_assets.samples import write_synthetic_video  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_input(ext, batch: int) -> torch.Tensor:
    """A pre-made, normalised batch on the device, the model run three times on it (warm-up)."""
    x = ext.preprocess(torch.randint(0, 255, (batch, ext.input_size, ext.input_size, 3), dtype=torch.uint8))
    with torch.inference_mode():
        for _ in range(3):
            ext._features(x)
    sync(ext.device)
    return x


def forward_for(ext, x: torch.Tensor, seconds: float) -> tuple[int, float]:
    """``(images, elapsed s)``: the bare forward on ``x``, repeated for ``seconds``."""
    with torch.inference_mode():
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            ext._features(x)
            n += len(x)
        sync(ext.device)
    return n, time.perf_counter() - t0


def bare(ext, batch: int, seconds: float) -> float:
    n, elapsed = forward_for(ext, bare_input(ext, batch), seconds)
    return n / elapsed


def stream_factory(
    ext,
    sources: list[str],
    batch: int,
    workers: int,
    fps: float,
    backend: str,
    pin: bool = True,
    device_convert: bool = False,
    feed_device: str = "cpu",
    decoder_threads: int | None = None,
    shared_slots: bool = True,
    read_ahead: int | None = None,
    convert_method: str = "auto",
):
    """A function that starts a pass over ``sources``: uint8 clip batches on the model's device."""
    plan = SamplingPlan(fps=fps, short_side=256)
    spec = ClipSpec(frames_per_clip=1, stride=1, crop_size=ext.input_size if ext else 224)
    device = ext.device if ext is not None else torch.device(feed_device)

    def make():
        stream = iter_clip_batches(
            sources,
            plan,
            spec,
            batch_clips=batch,
            num_workers=workers,
            backend=backend,
            pin_memory=pin and (ext is None or ext.device.type == "cuda"),
            device_convert=device_convert,
            decoder_threads=decoder_threads,
            shared_slots=shared_slots,
            read_ahead=read_ahead,
        )
        for b in stream:
            if b.error:
                raise RuntimeError(b.error)
            yield to_device_clips(b, spec, plan.short_side, device, convert_method) if device_convert else b.pixels

    return make


def pipeline(ext, make, device: torch.device, device_convert: bool, depth: int = 1, profile_to=None) -> dict:
    """One pass of ``make()`` (see ``stream_factory``). ``ext=None``: the decode feed alone (no
    model), to see what the decoders can deliver. ``device_convert``: decoders hand over YUV
    planes; conversion, resize and crops run on the device."""
    t_start = time.perf_counter()
    t_first = None
    images = images_after_first = 0

    def submit(pixels):
        if ext is not None:
            return submit_clips(ext, pixels)
        if device_convert:
            sync(device)
        return None

    prof = _profiler(device) if profile_to else None
    # ``depth`` batches stay queued on the device while the host receives the next one
    for pixels, pending in iter_pipelined(make(), submit, depth=depth):
        if pending is not None:
            assert np.isfinite(pending.result().features).all()
        if prof is not None:
            prof.step()
        n = int(pixels.shape[0] * pixels.shape[1] * pixels.shape[2])
        images += n
        if t_first is None:
            t_first = time.perf_counter()
        else:
            images_after_first += n
    end = time.perf_counter()
    if prof is not None:
        prof.stop()
        _write_profile(prof, device, profile_to)
    return {
        "images": images,
        "wall_s": end - t_start,
        "startup_s": t_first - t_start,
        "images_per_s_total": images / (end - t_start),
        "images_per_s_steady": images_after_first / max(end - t_first, 1e-9),
    }


def _finish(window: collections.deque, keep: int) -> int:
    """Read queued results until ``keep`` passes are left; the number of images finished."""
    images = 0
    while len(window) > keep:
        px, pending = window.popleft()
        assert np.isfinite(pending.result().features).all()
        images += int(px.shape[0] * px.shape[1] * px.shape[2])
    return images


def interleaved(ext, make_stream, batch: int, segment_s: float, pairs: int, depth: int = 1) -> dict:
    """Alternate ``segment_s`` of the bare forward with ``segment_s`` of the pipeline, ``pairs`` times.

    The pipeline's stream persists across its segments (restarted when the videos run out; the
    first batch after each start is not counted), so both sides see the same seconds-scale drift
    of a shared host, which a bare pass followed by a whole pipeline pass does not. Queued passes
    are drained inside their own segment: every counted image is finished within it."""
    x = bare_input(ext, batch)
    stream, fresh = make_stream(), True
    rows = []
    for _ in range(pairs):
        n, bare_s = forward_for(ext, x, segment_s)
        imgs, window, t0, skipped = 0, collections.deque(), None, 0.0
        while t0 is None or time.perf_counter() - t0 - skipped < segment_s:
            ts = time.perf_counter()
            pixels = next(stream, None)
            if pixels is None or fresh:
                imgs += _finish(window, 0)  # what is queued is finished before the clock stops
                # a pass's first batch (start-up: opening, worker spawn, first pass) is not counted
                ts = time.perf_counter()
                if pixels is None:
                    stream = make_stream()
                    pixels = next(stream)
                submit_clips(ext, pixels).result()
                fresh = False
                if t0 is not None:
                    skipped += time.perf_counter() - ts
                continue
            if t0 is None:
                t0 = ts
            window.append((pixels, submit_clips(ext, pixels)))
            imgs += _finish(window, depth)
        imgs += _finish(window, 0)
        rows.append((n, bare_s, imgs, time.perf_counter() - t0 - skipped))
    return {
        "bare_images_per_s": sum(r[0] for r in rows) / sum(r[1] for r in rows),
        "pipeline_images_per_s": sum(r[2] for r in rows) / sum(r[3] for r in rows),
        "pairs": [(round(r[0] / r[1], 1), round(r[2] / r[3], 1)) for r in rows],
    }


def _profiler(device: torch.device):
    """torch.profiler over batches 5-16 of a pipeline pass (after start-up), host and device."""
    from torch.profiler import ProfilerActivity, profile, schedule

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    prof = profile(activities=acts, schedule=schedule(wait=2, warmup=2, active=12, repeat=1))
    prof.start()
    return prof


def _write_profile(prof, device: torch.device, path: str) -> None:
    """Top ops by host time and by device time, and how busy the device was over the window."""
    avg = prof.key_averages()
    lines = [avg.table(sort_by="self_cpu_time_total", row_limit=30)]
    if device.type == "cuda":
        lines.append(avg.table(sort_by="self_device_time_total", row_limit=20))
        busy_us = sum(e.self_device_time_total for e in avg)
        steps = [e for e in prof.events() if e.name.startswith("ProfilerStep#")]
        wall_us = sum(e.cpu_time_range.elapsed_us() for e in steps)
        lines.append(f"device busy {busy_us / 1e3:.1f} ms of {wall_us / 1e3:.1f} ms wall over {len(steps)} batches")
    Path(path).write_text("\n\n".join(lines))
    print(lines[-1] if device.type == "cuda" else f"profile written to {path}")


def _describe(args, ext, decode_batch: int) -> dict:
    return {
        "extractor": ext.id,
        "device": str(ext.device),
        "device_name": torch.cuda.get_device_name(ext.device) if ext.device.type == "cuda" else cpu_model(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "precision": ext._dtype_name(),
        "compile": args.compile,
        "batch": args.batch,
        "decode_batch": decode_batch,
        "workers": args.workers,
        "backend": args.backend,
        "decoder_threads": args.decoder_threads,
        "read_ahead": args.read_ahead,
        "gomp_spincount": os.environ.get("GOMP_SPINCOUNT"),
        "depth": args.depth,
        "shared_slots": not args.no_slots,
        "pinned": not args.no_pin,
        "device_convert": args.device_convert,
        "convert_method": args.convert_method,
        "video": f"{args.videos} x {args.seconds_per_video:.0f} s {args.size} H.264 30 fps, sampled at {args.fps} fps",
    }


def report(result: dict, path: str | None) -> None:
    width = max(map(len, result))
    for k, v in result.items():
        print(f"{k:<{width}}  {v}")
    if path:
        Path(path).write_text(json.dumps(result, indent=2))


def _make_video(job) -> None:
    path, seconds, size, seed = job
    write_synthetic_video(path, seconds=seconds, fps=30, size=size, seed=seed)


def _cpu_defaults(args) -> None:
    """Unset options: on a CPU-only run the configuration RESULTS.md records for the 2-core VM
    (batch 8, 2 x 10 s videos, 20 interleaved pairs of 2 s), else whole-pass rounds at batch 64."""
    cpu = args.device == "cpu" or (args.device == "auto" and not torch.cuda.is_available())
    for name, on_cpu, other in [
        ("batch", 8, 64),
        ("videos", 2, 4),
        ("seconds_per_video", 10.0, 20.0),
        ("rounds", 20, 3),
        ("segment_seconds", 2.0, 0.0),
    ]:
        if getattr(args, name) is None:
            setattr(args, name, on_cpu if cpu and not args.feed_only else other)


def prepare_videos(video_dir: str | None, videos: int, seconds: float, size: str) -> list[str]:
    """Synthetic 30 fps H.264 test videos, encoded in parallel once (kept in ``video_dir``)."""
    w, h = map(int, size.split("x"))
    folder = Path(video_dir or tempfile.mkdtemp(prefix="vid_assets_bench_"))
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(folder / f"v{i}_{size}_{seconds:g}s.mp4", seconds, (w, h), i) for i in range(videos)]
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        list(pool.map(_make_video, [j for j in jobs if not j[0].exists()]))
    return [str(j[0]) for j in jobs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--extractor", default="efficientnet_lite0")
    ap.add_argument("--weights-none", action="store_true", help="random init (timm:/tv: names)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=None, help="images per forward pass (default: 8 on CPU, 64)")
    ap.add_argument(
        "--decode-batch",
        type=int,
        default=0,
        help="clips per decoded batch (0 = max(--batch, 32)); the extractor splits it into --batch passes",
    )
    ap.add_argument("--workers", type=int, default=0, help="decoders (0 = decode inline)")
    ap.add_argument("--backend", default="auto", choices=["auto", "threads", "processes"])
    ap.add_argument("--decoder-threads", type=int, default=None, help="FFmpeg threads per decoder (default: shared)")
    ap.add_argument("--read-ahead", type=int, default=None, help="inline: frames a helper thread decodes ahead")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--fps", type=float, default=30.0, help="sampling rate (source videos are 30 fps)")
    ap.add_argument("--videos", type=int, default=None, help="default: 2 on CPU, 4")
    ap.add_argument("--seconds-per-video", type=float, default=None, help="default: 10 on CPU, 20")
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--bare-seconds", type=float, default=10.0)
    ap.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="bare/pipeline rounds, or pairs with --segment-seconds (default 20 on CPU, 3)",
    )
    ap.add_argument(
        "--segment-seconds",
        type=float,
        default=None,
        help="interleave bare and pipeline in segments this long (--rounds pairs) instead of whole passes "
        "(default: 2 on CPU, 0 = whole passes)",
    )
    ap.add_argument("--feed-only", action="store_true", help="decoders alone, no model")
    ap.add_argument(
        "--device-convert", action="store_true", help="decoders hand over YUV; convert/resize/crop on the device"
    )
    ap.add_argument(
        "--convert-method",
        default="auto",
        choices=["auto", "matmul", "interpolate"],
        help="with --device-convert: resampling matrices (CUDA's default) or whole-frame interpolation",
    )
    ap.add_argument("--no-pin", action="store_true", help="do not page-lock batches (CUDA)")
    ap.add_argument("--video-dir", default=None, help="keep/reuse the generated videos here")
    ap.add_argument("--depth", type=int, default=1, help="batches queued on the device ahead of the host (0 = wait)")
    ap.add_argument("--profile", default=None, help="after the rounds, profile one pass into this text file")
    ap.add_argument("--no-slots", action="store_true", help="processes hand batches over the DataLoader's way")
    ap.add_argument("--prepare-only", action="store_true", help="only encode the test videos (--video-dir)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    _cpu_defaults(args)

    decode_batch = args.decode_batch or max(args.batch, 32)
    sources = prepare_videos(args.video_dir, args.videos, args.seconds_per_video, args.size)
    if args.prepare_only:
        print(f"{len(sources)} videos in {Path(sources[0]).parent}")
        return
    kw = {"device": args.device, "precision": args.precision, "compile": args.compile, "batch_size": args.batch}
    if args.weights_none:
        kw["pretrained" if args.extractor.startswith("timm:") else "weights"] = (
            False if args.extractor.startswith("timm:") else None
        )
    ext = create_extractor(args.extractor, **kw)
    feed_device = "cuda" if args.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
    make = stream_factory(
        None if args.feed_only else ext,
        sources,
        decode_batch,
        args.workers,
        args.fps,
        args.backend,
        args.feed_only or not args.no_pin,
        args.device_convert,
        feed_device,
        args.decoder_threads,
        not args.no_slots,
        args.read_ahead,
        args.convert_method,
    )
    if args.feed_only:
        r = pipeline(None, make, torch.device(feed_device), args.device_convert)
        feed = {"backend": args.backend, "workers": args.workers, "batch": decode_batch, "cpu_count": os.cpu_count()}
        feed |= {"device_convert": args.device_convert, "feed_device": feed_device, "shared_slots": not args.no_slots}
        feed |= {"feed_images_per_s": round(r["images_per_s_steady"], 1), "startup_s": round(r["startup_s"], 2)}
        print(json.dumps(feed))
        if args.json:
            Path(args.json).write_text(json.dumps(feed, indent=2))
        return

    # This host's speed drifts between runs (shared VM), so bare and pipeline alternate for
    # ``--rounds`` rounds and the medians are compared.
    def run_pipeline(profile_to: str | None = None) -> dict:
        return pipeline(ext, make, ext.device, args.device_convert, args.depth, profile_to)

    if args.segment_seconds > 0:
        r = interleaved(ext, make, args.batch, args.segment_seconds, args.rounds, depth=args.depth)
        ratios = sorted(p / b for b, p in r["pairs"])
        q = lambda f: round(ratios[min(len(ratios) - 1, int(f * len(ratios)))], 3)  # noqa: E731
        result = _describe(args, ext, decode_batch) | {
            "method": f"interleaved: {args.rounds} x ({args.segment_seconds:g} s bare + {args.segment_seconds:g} s pipeline)",
            "bare_images_per_s": round(r["bare_images_per_s"], 1),
            "pipeline_images_per_s": round(r["pipeline_images_per_s"], 1),
            "pipeline_vs_bare": round(r["pipeline_images_per_s"] / r["bare_images_per_s"], 3),
            "pair_ratio_median": round(float(np.median(ratios)), 3),
            "pair_ratio_iqr": [q(0.25), q(0.75)],
            "pairs_bare_pipeline": r["pairs"],
        }
        report(result, args.json)
        return

    bares, pipes = [], []
    for _ in range(args.rounds):
        bares.append(bare(ext, args.batch, args.bare_seconds))
        pipes.append(run_pipeline())
    if args.profile:
        run_pipeline(args.profile)
    bare_ips = float(np.median(bares))
    steady = [p["images_per_s_steady"] for p in pipes]
    pipe = pipes[int(np.argsort(steady)[len(steady) // 2])]
    # each round's pipeline pass ran right after its bare pass: their ratio cancels this host's
    # slow drift, so the headline is the median of the per-round ratios
    ratios = [p / b for p, b in zip(steady, bares, strict=True)]
    result = _describe(args, ext, decode_batch) | {
        "method": f"{args.rounds} rounds of ({args.bare_seconds:g} s bare, then one pipeline pass)",
        "bare_images_per_s": round(bare_ips, 1),
        "pipeline_images_per_s": round(pipe["images_per_s_steady"], 1),
        "pipeline_images_per_s_incl_startup": round(pipe["images_per_s_total"], 1),
        "pipeline_startup_s": round(pipe["startup_s"], 2),
        "images": pipe["images"],
        "pipeline_vs_bare": round(float(np.median(ratios)), 3),
        "ratio_of_medians": round(pipe["images_per_s_steady"] / bare_ips, 3),
        "rounds_bare": [round(b, 1) for b in bares],
        "rounds_pipeline": [round(p, 1) for p in steady],
        "rounds_ratio": [round(r, 3) for r in ratios],
    }
    report(result, args.json)


if __name__ == "__main__":
    main()
