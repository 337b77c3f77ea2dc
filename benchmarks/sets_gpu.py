"""The two seed recipes' feature sets on a GPU (issue 22): frames/s through the VAE set on 1080p
video, and videos/s through DINOv2-large at 1 fps (seed 002's anchor: 1,406 videos in 1-2 h).

    python benchmarks/sets_gpu.py --json out.json                # on the lent GPU host
    python benchmarks/sets_gpu.py --tiny --device cpu --videos 2 --seconds 6   # a CPU smoke test

Both run ``vid_assets.extract`` (the engine the assets run) with the sets' own fields from
``examples/feature_sets.yaml``. Nothing can be downloaded there, so the models are the real
architectures with random weights: ``timm:vit_large_patch14_dinov2`` (``pretrained: false``,
``img_size`` as the set says) and an ``AutoencoderKL`` with Stable Diffusion's VAE config saved
to a folder (``--tiny``: a small VAE and ViT, for the smoke test). Speed does not depend on the
weights' values.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import platform
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vid_assets.devtools.models import SD_VAE, SMALL_VAE, save_random_vae  # noqa: E402
from vid_assets.extraction import extract  # noqa: E402
from vid_assets.feature_sets import load_sets  # noqa: E402
from vid_assets.samples import write_synthetic_video  # noqa: E402


def save_vae(folder: Path, tiny: bool) -> Path:
    if not (folder / "config.json").exists():
        save_random_vae(folder, SMALL_VAE if tiny else SD_VAE)
    return folder


def _encode(job: tuple[str, float, tuple[int, int], int]) -> None:
    path, seconds, size, seed = job
    tmp = Path(path).with_name(f".{Path(path).name}")  # published whole: a killed encode leaves no video
    write_synthetic_video(tmp, seconds=seconds, fps=30, size=size, seed=seed, threads=0, preset="ultrafast")
    os.replace(tmp, path)


def videos(folder: Path, n: int, seconds: float, size: tuple[int, int]) -> list[str]:
    """``n`` synthetic videos, encoded in parallel (one at a time took over 130 s for 6 x 24-s 1080p
    on the H200 host: the frames are drawn in Python)."""
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(str(folder / f"v{i:02d}_{size[1]}p.mp4"), seconds, size, i) for i in range(n)]
    with ProcessPoolExecutor(max_workers=min(n, os.cpu_count() or 1)) as pool:
        list(pool.map(_encode, [j for j in jobs if not Path(j[0]).exists()]))
    return [j[0] for j in jobs]


def run(name: str, sources: list[str], out: Path, extractor: str, args: dict, sampling: dict, device: str) -> dict:
    frames = [0]

    class Count:
        def reset(self, total: int) -> None: ...

        def update(self, current: int) -> None: ...

    t0 = time.perf_counter()
    summary = extract(
        sources,
        out=out / name,
        extractor=extractor,
        extractor_args=args,
        device=device,
        progress=Count(),
        on_pass=lambda n: frames.__setitem__(0, frames[0] + n),
        **sampling,
    )
    took = time.perf_counter() - t0
    return {"videos": summary["done"], "failed": len(summary["failed"]), "seconds": round(took, 2), "clips": frames[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--videos", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=24.0, help="per video (seed 002's are ~24 s)")
    ap.add_argument("--tiny", action="store_true", help="small models (CPU smoke test)")
    ap.add_argument("--work", default="/tmp/vid_assets_sets_gpu")
    args = ap.parse_args()
    faulthandler.register(signal.SIGTERM, all_threads=True)  # a step killed by `timeout` shows where it was
    work = Path(args.work)
    sets = load_sets([str(Path(__file__).resolve().parents[1] / "examples" / "feature_sets.yaml")])
    vae_set, dino_set = sets["vae_latents"], sets["dinov2_frames"]
    size = (320, 240) if args.tiny else (1920, 1080)
    sources = videos(work / "videos", args.videos, args.seconds, size)
    res = {"machine": f"{platform.machine()} {os.cpu_count()} cores", "device": args.device, "sources": sources}
    try:
        import torch

        res["gpu"] = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001
        res["gpu"] = None
    sampling = {**vae_set.sampling, "max_segments": 0}  # every segment of the video: frames/s over all of them
    vae = save_vae(work / ("tiny_vae" if args.tiny else "sd_vae_random"), args.tiny)
    for attempt in ("warm", "timed"):  # the first run pays model load and cudnn autotuning
        row = run(f"vae_{attempt}", sources, work / "out" / attempt, f"vae:{vae}", vae_set.args, sampling, args.device)
    frames = row["clips"] * vae_set.sampling["frames_per_segment"]
    res["vae"] = {**row, "frames_encoded": frames, "frames_per_s": round(frames / row["seconds"], 1)}
    print("vae", res["vae"], flush=True)
    arch = "timm:vit_small_patch14_dinov2" if args.tiny else "timm:vit_large_patch14_dinov2"
    dino_args = {**dino_set.args, "pretrained": False}
    for attempt in ("warm", "timed"):
        row = run(f"dino_{attempt}", sources, work / "out" / attempt, arch, dino_args, dino_set.sampling, args.device)
    res["dinov2_large_1fps"] = {**row, "videos_per_s": round(row["videos"] / row["seconds"], 3)}
    res["seed_002_anchor_videos_per_s"] = [round(1406 / 7200, 3), round(1406 / 3600, 3)]
    print("dinov2", res["dinov2_large_1fps"], flush=True)
    print(json.dumps({k: v for k, v in res.items() if k != "sources"}, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
