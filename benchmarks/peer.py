"""Against a well-known peer: v-iashin/video_features' ResNet-50 extractor, on the same work.

    python benchmarks/peer.py --peer-dir PATH/TO/video_features --json out.json

The work (issue 21): ResNet-50 features at 1 fps, one row per frame, 10 videos of 14–20 s,
on the CPU, batch 8, random weights on both sides (no hub here). Both sides are timed as whole
commands, the way a user runs them:

- **peer**: ``python main.py feature_type=resnet model_name=resnet50 extraction_fps=1
  batch_size=8 device=cpu on_extraction=save_numpy`` over the videos. It re-encodes every video
  with the ffmpeg CLI at 1 fps into a temporary file, decodes that with OpenCV, converts each frame
  with PIL and torchvision's transforms. A shim loads torchvision's ResNet-50 with ``weights=None``
  (its transforms are the weights' own, so the preprocessing is unchanged).
- **ours**: ``vid-assets register`` (as a user registers a folder) plus one batch run of the
  four assets over all ten videos, ``dagster job execute -j embed_videos --tags <range>`` (the
  command the issue's comparison timed) on definitions with ``tv:resnet50`` (``weights=None``),
  1 fps, one frame per clip.
- **ours, one command**: ``vid-assets register FOLDER --run -c run.yaml``, which registers and
  runs the same batch in one process (``VID_ASSETS_SETS`` names the same set, the run config the
  same batch of 8), so Dagster is imported once.

Ours run with ``--runtime`` (default ``auto``, the product's default: ONNX Runtime for this fp32
frame model on the CPU), set as ``VID_ASSETS_RUNTIME``, with a graph cache of the
benchmark's own that is empty before round 0; ``--torch-too`` times the one command in PyTorch as
well, side by side.

Needs the ``ffmpeg`` CLI, ``opencv-python-headless`` and ``omegaconf`` for the peer (not
dependencies of this project), and a checkout of the peer (not copied into this repository).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vid_assets.devtools.host import cpu_model  # noqa: E402
from vid_assets.samples import write_synthetic_video  # noqa: E402

PEER_SHIM = """
import sys, torchvision.models as models
get_model = models.get_model
models.get_model = lambda name, weights=None, **kw: get_model(name, weights=None, **kw)  # random init, no download
sys.argv = ["main.py", *sys.argv[1:]]
sys.path.insert(0, ".")
import runpy
runpy.run_path("main.py", run_name="__main__")
"""
DEFS = """
from vid_assets.feature_sets import FeatureSet
from vid_assets.defs.build import build_definitions
from vid_assets.defs.resources import ExtractorResource

# the model as a feature set names it now: torchvision's ResNet-50 with random weights (args), whose
# input is read from torchvision's config, so nothing is built twice
resnet = FeatureSet.from_dict(
    "default",
    {{"extractor": "tv:resnet50", "args": {{"weights": None}}, "sampling": {{"fps": 1.0, "frames_per_clip": 1}}}},
)
defs = build_definitions(
    videos_dir={videos!r}, work_dir={work!r}, store_dir={store!r},
    extractor=ExtractorResource(device="cpu", batch_size=8), sets=[resnet],
)
"""
MODELS = """
from vid_assets.extractors import create_extractor


def resnet50_random(**kwargs):
    return create_extractor("tv:resnet50", weights=None, **kwargs)
"""


def prepare(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        p = folder / f"v{i:02d}.mp4"
        if not p.exists():
            write_synthetic_video(p, seconds=14 + (6 * i) / max(1, count - 1), fps=30, size=(320, 240), seed=500 + i)
        paths.append(p)
    return paths


def run_peer(peer_dir: Path, paths: list[Path], out: Path) -> float:
    cmd = [sys.executable, "-c", PEER_SHIM, "feature_type=resnet", "model_name=resnet50", "extraction_fps=1"]
    cmd += ["batch_size=8", "device=cpu", "on_extraction=save_numpy", f"output_path={out}", f"tmp_path={out}/tmp"]
    cmd += [f"video_paths=[{','.join(str(p) for p in paths)}]"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=peer_dir, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"peer failed: {proc.stderr[-3000:]}")
    return took


def run_ours(root: Path, folder: Path) -> dict:
    import shutil

    home = root / "home"
    home.mkdir(parents=True)
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    defs_file = root / "peer_defs.py"
    defs_file.write_text(DEFS.format(videos=str(folder), work=str(root / "work"), store=str(root / "f.zarr")))
    (root / "vid_peer_models.py").write_text(MODELS)
    env = {**os.environ, "DAGSTER_HOME": str(home), "HF_HUB_OFFLINE": "1", "PYTHONPATH": f"{ROOT}{os.pathsep}{root}"}
    env["VID_ASSETS_WORK"] = str(root / "work")  # the catalog the definitions read
    t0 = time.perf_counter()
    listed = subprocess.run(
        [str(Path(sys.executable).parent / "vid-assets"), "register", str(folder)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout  # as a user registers a folder: "<key>\t<path>" per video
    keys = [line.split("\t")[0] for line in listed.splitlines() if "\t" in line]
    registered = time.perf_counter() - t0
    # the batch command the comparison timed (superseded by `dg launch` in 1.13, which
    # refuses ranges of a multi-run step; `dagster job launch` needs a daemon): one whole command
    tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
    cmd = [sys.executable, "-m", "dagster", "job", "execute", "-f", str(defs_file), "-j", "embed_videos"]
    cmd += ["--tags", json.dumps(tags)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=root)
    total = time.perf_counter() - t0
    (root / "run.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0 or "RUN_SUCCESS" not in proc.stdout + proc.stderr:
        raise RuntimeError(f"batch run failed: {(proc.stdout + proc.stderr)[-3000:]}")
    return {"register_s": registered, "run_s": total - registered, "total_s": total, "videos": len(keys)}


SETS_YAML = """
sets:
  default:
    extractor: tv:resnet50
    args: {weights: null}
    sampling: {fps: 1.0, frames_per_clip: 1}
"""
RUN_YAML = """
resources:
  extractor:
    config: {device: cpu, batch_size: 8}
"""


def run_ours_one_command(root: Path, folder: Path, runtime: str = "") -> dict:
    """``vid-assets register FOLDER --run``: register and the batch run in one process
    (``runtime``: ``VID_ASSETS_RUNTIME`` for it; default the benchmark's ``--runtime``)."""
    import shutil

    home = root / "home"
    home.mkdir(parents=True)
    shutil.copyfile(ROOT / "dagster.yaml", home / "dagster.yaml")
    (root / "sets.yaml").write_text(SETS_YAML)
    (root / "run.yaml").write_text(RUN_YAML)
    env = {**os.environ, "DAGSTER_HOME": str(home), "HF_HUB_OFFLINE": "1", "VID_ASSETS_SETS": str(root / "sets.yaml")}
    env.update(VID_ASSETS_WORK=str(root / "work"), VID_ASSETS_STORE=str(root / "f.zarr"), VID_ASSETS_VIDEOS=str(folder))
    if runtime:
        env["VID_ASSETS_RUNTIME"] = runtime
    cmd = [
        str(Path(sys.executable).parent / "vid-assets"),
        "register",
        str(folder),
        "--run",
        "-c",
        str(root / "run.yaml"),
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=root)
    total = time.perf_counter() - t0
    (root / "run_one.log").write_text(proc.stdout + proc.stderr)
    stored = next((line for line in proc.stdout.splitlines() if " stored, " in line), "")
    if proc.returncode != 0 or not stored.startswith("10 stored, 0 failed"):
        raise RuntimeError(f"register --run failed: {(proc.stdout + proc.stderr)[-3000:]}")
    return {"total_s": total, "summary": stored}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer-dir", required=True, type=Path)
    ap.add_argument("--videos", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2, help="alternate the two sides this many times")
    ap.add_argument("--json", default=None)
    ap.add_argument("--torch-too", action="store_true", help="also the one command with VID_ASSETS_RUNTIME=torch")
    ap.add_argument("--runtime", default="auto", help="VID_ASSETS_RUNTIME for ours (torch | auto | onnxruntime)")
    args = ap.parse_args()
    os.environ["VID_ASSETS_RUNTIME"] = args.runtime
    # exported ONNX graphs in a cache of this run's own: round 0 exports (as a first run on a new
    # host does), later rounds read it (as every later run does)
    cache = tempfile.TemporaryDirectory(prefix="vid_assets_peer_cache_")
    os.environ["VID_ASSETS_CACHE"] = cache.name
    folder = Path(tempfile.gettempdir()) / "vid_assets_peer_videos"
    paths = prepare(folder, args.videos)
    peer, ours, one, one_torch = [], [], [], []
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="vid_assets_peer_") as tmp:
            tmp = Path(tmp)
            peer.append(run_peer(args.peer_dir, paths, tmp / "peer_out"))
            ours.append(run_ours(tmp / "ours", folder))
            one.append(run_ours_one_command(tmp / "one", folder))
            if args.torch_too:
                one_torch.append(run_ours_one_command(tmp / "one_torch", folder, runtime="torch"))
        print(
            f"round {r}: peer {peer[-1]:.1f} s, ours {ours[-1]['total_s']:.1f} s,"
            f" ours in one command {one[-1]['total_s']:.1f} s"
            + (f", the same in PyTorch {one_torch[-1]['total_s']:.1f} s" if one_torch else ""),
            flush=True,
        )
    best_peer, best_ours = min(peer), min(o["total_s"] for o in ours)
    result = {
        "machine": f"{platform.node()} {cpu_model()} x{os.cpu_count()}",
        "videos": args.videos,
        "peer_s": peer,
        "ours": ours,
        "ours_one_command": one,
        "ours_vs_peer": best_peer / best_ours,
        "ours_one_command_vs_peer": best_peer / min(o["total_s"] for o in one),
        "onnx_cache": "empty before round 0",
        "runtime": args.runtime,
    }
    if one_torch:
        result["ours_one_command_torch"] = one_torch
        result["ours_one_command_torch_vs_peer"] = best_peer / min(o["total_s"] for o in one_torch)
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
