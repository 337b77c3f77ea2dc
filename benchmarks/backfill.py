"""What a user's backfill costs against the engine alone, a naive loop, and on disk and memory.

    python benchmarks/backfill.py --json out.json [--quick] [--rounds N] [--batch N] [--video-dir DIR]

Paths compared do the same work on the same videos: EfficientNet-Lite0 on the CPU, features
written to a Zarr store. Backfill vs engine: the product's default plan (2 fps, clips of 2 frames).
Backfill vs naive: 1 fps, one feature row per sampled frame (seed 002's recipe), as the naive loop.

- **engine**: ``vid_assets.engine`` in this plain Python process (model loaded before the clock),
  each result written to the store: the floor a backfill is measured against. It runs before and
  after the backfill, and the ratio uses the mean of the two (both are in the JSON). With
  ``--rounds N``, N backfills alternate with N + 1 engine passes and the ratios are the medians
  (this VM's speed drifts by 5-10 % within one run of the benchmark).
- **backfill**: a real one. A fresh ``DAGSTER_HOME`` with the repository's ``dagster.yaml``
  (queued runs, ``max_concurrent_runs``, the ``gpu`` pool), ``dagster-daemon run`` on the
  product's definitions, videos registered with ``vid-assets register``, then a partition backfill
  of the four video assets submitted as the UI's GraphQL mutation does
  (``PartitionBackfill.from_asset_partitions`` + ``instance.add_backfill``). The daemon turns it
  into runs of ``--batch`` videos (``VID_ASSETS_BATCH``), queues and launches them; every run is
  a process that imports everything and loads the model. Two figures: from submission to the last
  run's end (``backfill_s``), and the same less the daemon's pick-up wait (its backfill loop ticks
  every 30 s, a Dagster constant: ``pickup_s``). The ratios use the latter; both are in the JSON.
- **naive**: what the seed scripts do: decode every frame, convert it to RGB, keep 1 fps, resize,
  one model call per frame, ``np.save`` per video.
- **disk**: bytes under the work folder, sampled every 0.2 s during the 10-s backfill, and left after.
- **memory**: peak RSS of ``dagster asset materialize`` of one 1-min and one 20-min video.
- **one video**: ``dagster asset materialize --select '*' --partition K`` as a whole command.

``--gpu`` (a lent GPU host, ``benchmarks/gpu_session.sh backfill``): 1080p videos, ViT-B/16
(random init, bf16, compiled), every frame sampled; the bare compiled model's images/s on
pre-made tensors against the images/s inside the asset (the step's engine log line), with
videos/s and decoded frames/s, and PyAV's CUDA hardware decoder against one CPU decoder. Then a
second backfill of a third of the videos with ten crops per frame (``*_ten_crop``): ten images per
decoded frame, so the model rather than 1080p decode sets the pace. ``--rehearse`` runs the row
on the CPU, small and uncompiled, to check the step before a GPU is lent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vid_assets.devtools.host import cpu_model  # noqa: E402
from vid_assets.devtools.net import free_port, wait_port  # noqa: E402
from vid_assets.samples import write_synthetic_video  # noqa: E402

DEFS = """
from vid_assets.defs.build import build_definitions
from vid_assets.defs.resources import ExtractorResource, SamplingResource

defs = build_definitions(
    videos_dir={videos!r},
    work_dir={work!r},
    store_dir={store!r},
    extractor=ExtractorResource({extractor}),
    sampling=SamplingResource({sampling}),
)
"""
GPU_MODELS = """
from vid_assets.extractors import create_extractor


def vit_random(**kwargs):
    return create_extractor("timm:vit_base_patch16_224", pretrained=False, **kwargs)
"""
DEFAULT_PLAN: dict = {}  # the product's defaults: 2 fps, clips of 2 frames fitted to the model
ONE_FPS = {"fps": 1.0, "frames_per_clip": 1}  # the naive loop's work: one row per 1-fps frame
VIDEO_ASSETS = ["decoded_frames", "clip_tensors", "clip_embeddings", "stored_features"]


# -- videos ---------------------------------------------------------------------------------------
# x264's "veryfast" preset: a fresh machine encodes every video first, and with the default preset
# that took ~4 of `--quick`'s 16 minutes on 2 cores (session 29); decoding these costs the same
# within 8 %. The default cache folder is named after the preset, so older videos are not mixed in.
PRESET = "veryfast"
# the one-video command's videos and the RSS pair's, shortest first: name -> (seconds, size)
SINGLES = {"ten": (10, (320, 240)), "one_min": (60, (160, 120)), "twenty_min": (1200, (160, 120))}


def _encode(job) -> None:
    path, seconds, size, seed = job
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}")  # published whole: an interrupted encode leaves no video
    write_synthetic_video(tmp, seconds=seconds, fps=30, size=size, seed=seed, preset=PRESET)
    os.replace(tmp, path)


def _single(folder: Path, name: str) -> tuple:
    seconds, size = SINGLES[name]
    return folder / f"{name}.mp4", seconds, size, 7


def prepare(folder: Path, count: int, seconds: float, size: tuple[int, int], extra: Sequence[tuple] = ()) -> list[Path]:
    """``count`` distinct synthetic 30 fps H.264 videos (encoded once, kept in ``folder``).
    ``extra``: more ``_encode`` jobs for the same pool, first (the 20-min video overlaps the set's)."""
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(folder / f"v{i:04d}.mp4", seconds, size, 1000 + i) for i in range(count)]
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        list(pool.map(_encode, [j for j in [*extra, *jobs] if not j[0].exists()]))
    return [j[0] for j in jobs]


# -- the engine alone -----------------------------------------------------------------------------
def run_engine(paths: list[Path], store_dir: Path, sampling: dict) -> float:
    from vid_assets import engine
    from vid_assets.defs.resources import ExtractorResource, SamplingResource
    from vid_assets.media import VideoRef
    from vid_assets.results import store_result
    from vid_assets.store import FeatureStore

    ext = ExtractorResource(device="cpu").load()  # before the clock, as the issue asks
    config = SamplingResource(**sampling).config(ext)
    store, info = FeatureStore(store_dir), ext.describe()
    refs = [VideoRef.from_path(p) for p in paths]  # hashing counts on both sides
    t0 = time.perf_counter()
    for r in engine.extract([str(p) for p in paths], ext, config):
        assert r.ok, r.error
        store_result(refs[r.index], r, store, info, config)
    return time.perf_counter() - t0


# -- a naive loop (the seed scripts) --------------------------------------------------------------
def run_naive(paths: list[Path], out: Path) -> float:
    import av
    import torch
    import torch.nn.functional as F

    from vid_assets.defs.resources import ExtractorResource

    ext = ExtractorResource(device="cpu").load()
    model = ext.model.eval()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for p in paths:
        feats = []
        with av.open(str(p)) as c:
            stream = c.streams.video[0]
            every = max(1, round(float(stream.average_rate or 30)))
            for i, frame in enumerate(c.decode(stream)):
                rgb = frame.to_ndarray(format="rgb24")  # every frame converted, as cv2.read() does
                if i % every:
                    continue
                x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
                h, w = x.shape[-2:]
                s = 256 / min(h, w)
                x = F.interpolate(x, size=(round(h * s), round(w * s)), mode="bilinear", antialias=True)
                top, left = (x.shape[-2] - 224) // 2, (x.shape[-1] - 224) // 2
                x = (x[..., top : top + 224, left : left + 224] - 0.5) / 0.5
                with torch.inference_mode():
                    f = model(x)  # the backbone: pooled features
                feats.append(f[0].numpy())
        np.save(out / f"{p.stem}.npy", np.stack(feats).astype(np.float32))
    return time.perf_counter() - t0


# -- a real backfill ------------------------------------------------------------------------------
class Home:
    """A fresh Dagster home + data folders, the product's definitions pointed at them."""

    def __init__(self, root: Path, batch: int, sampling: dict | None = None, extractor: dict | None = None) -> None:
        self.root = root
        self.home, self.work, self.store = root / "home", root / "work", root / "features.zarr"
        self.empty = root / "watched"  # the sensor watches an empty folder: the backfill is the only work
        for d in (self.home, self.empty):
            d.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / "dagster.yaml", self.home / "dagster.yaml")
        self.defs_file = root / "bench_defs.py"
        args = ", ".join(f"{k}={v!r}" for k, v in (sampling or {}).items())
        model = ", ".join(f"{k}={v!r}" for k, v in (extractor or {"device": "cpu"}).items())
        self.defs_file.write_text(
            DEFS.format(
                videos=str(self.empty), work=str(self.work), store=str(self.store), sampling=args, extractor=model
            )
        )
        (root / "vid_bench_models.py").write_text(GPU_MODELS)
        (root / "workspace.yaml").write_text(f"load_from:\n  - python_file: {self.defs_file}\n")
        self.env = {
            **os.environ,
            "DAGSTER_HOME": str(self.home),
            "VID_ASSETS_BATCH": str(batch),
            "DAGSTER_EVENT_BATCH_SIZE": os.environ.get("DAGSTER_EVENT_BATCH_SIZE", "1000"),  # as the Makefile
            "HF_HUB_OFFLINE": "1",
            "VID_ASSETS_SETTLE_S": "0",  # the videos were just copied here: no wait for them to settle
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), str(root), os.environ.get("PYTHONPATH")) if p),
        }

    def register(self, folder: Path) -> tuple[list[str], float]:
        """``vid-assets register`` with these definitions (as a user runs it), timed."""
        code = (
            "import sys, dagster as dg, runpy\n"
            f"defs = runpy.run_path({str(self.defs_file)!r})['defs']\n"
            "from vid_assets.demo import register_videos\n"
            "from vid_assets.media import scan_folder\n"
            f"refs = register_videos(dg.DagsterInstance.get(), defs, [p for p, _ in scan_folder({str(folder)!r})])\n"
            "print('\\n'.join(r.key for r in refs))\n"
        )
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(f"register failed:\n{out.stderr[-3000:]}")
        return out.stdout.split(), time.perf_counter() - t0


def _wait_daemon(instance, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        beats = instance.get_daemon_heartbeats()
        if {"BACKFILL", "QUEUED_RUN_COORDINATOR"} <= set(beats):
            return
        time.sleep(0.5)
    raise RuntimeError("dagster-daemon did not start")


def _service_cpu_s(*service_pids: int) -> float:
    """CPU seconds used so far by the daemon and the code server, with their direct children (the
    warm launcher's forkserver, multiprocessing's resource tracker) but not the run workers that
    the forkserver forks: what the services take beside the runs (Linux /proc)."""
    parent, cpu = {}, {}
    tick = os.sysconf("SC_CLK_TCK")
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(d.name)] = int(fields[1])
        cpu[int(d.name)] = (int(fields[11]) + int(fields[12])) / tick
    pids = set(service_pids) | {c for c, p in parent.items() if p in service_pids}
    return sum(cpu.get(pid, 0.0) for pid in pids)


def _dir_bytes(path: Path) -> int:
    from vid_assets.store.atomic import tree_bytes

    return tree_bytes(path) if path.exists() else 0


def run_backfill(
    root: Path, videos: Path, batch: int, sampling: dict, extractor: dict | None = None, early: bool = False
) -> dict:
    import dagster as dg
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
    from dagster._core.utils import make_new_backfill_id

    home = Home(root, batch, sampling, extractor)
    keys, register_s = home.register(videos)
    os.environ["DAGSTER_HOME"] = str(home.home)
    instance = dg.DagsterInstance.get()
    # the code location served by one long-lived code server, as `dagster dev` (make ui) and
    # production deployments serve it: a daemon given the python file itself starts a fresh code
    # server every 60 s (Dagster's RELOAD_WORKSPACE_INTERVAL), importing torch and the definitions
    # again, ~4-8 s of CPU a minute taken from the runs on 2 cores
    port = free_port()
    code_server = subprocess.Popen(
        [sys.executable, "-m", "dagster", "code-server", "start", "-f", str(home.defs_file)]
        + ["-h", "127.0.0.1", "-p", str(port), "--location-name", "bench"],
        env=home.env,
        stdout=subprocess.DEVNULL,
        stderr=open(root / "code_server.log", "w"),  # noqa: SIM115 - open for the server's lifetime
        start_new_session=True,
    )
    wait_port(port, timeout=120)
    (root / "workspace.yaml").write_text(
        f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {port}\n      location_name: bench\n"
    )

    def start_daemon() -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "dagster._daemon", "run", "-w", str(root / "workspace.yaml")],
            env=home.env,
            stdout=subprocess.DEVNULL,
            stderr=open(root / "daemon.log", "w"),  # noqa: SIM115 - open for the daemon's lifetime
            start_new_session=True,
        )

    daemon = None if early else start_daemon()
    peak, sampling = [0], threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            peak[0] = max(peak[0], _dir_bytes(home.work / "artifacts"))
            time.sleep(0.2)

    try:
        if not early:
            _wait_daemon(instance)
        import runpy

        defs = runpy.run_path(str(home.defs_file))["defs"]
        backfill_id = make_new_backfill_id()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0, cpu_at_first_run = time.time(), None
        instance.add_backfill(
            PartitionBackfill.from_asset_partitions(
                backfill_id=backfill_id,
                asset_graph=defs.resolve_asset_graph(),
                partition_names=keys,
                asset_selection=[dg.AssetKey(a) for a in VIDEO_ASSETS],
                backfill_timestamp=t0,
                tags={},
                dynamic_partitions_store=instance,
                all_partitions=False,
                title=None,
                description=None,
                run_config=None,
            )
        )
        if early:  # the daemon's first pass over backfills finds this one waiting
            daemon = start_daemon()
        while True:
            bf = instance.get_backfill(backfill_id)
            runs = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
            if runs and cpu_at_first_run is None:
                cpu_at_first_run = _service_cpu_s(daemon.pid, code_server.pid)
                own_at_first_run = time.process_time()
            finished = [r for r in runs if r.dagster_run.is_finished]
            if bf.status != BulkActionStatus.REQUESTED and runs and len(finished) == len(runs):
                break
            if time.time() - t0 > 3600:
                raise RuntimeError("backfill did not finish in an hour")
            # once a run is seen, polling less often: the times come from the run records, and
            # each poll (the backfill's record holds every partition) took CPU from the run
            time.sleep(0.5 if cpu_at_first_run is None else 2.0)
        sampling.set()
        # what the daemon and its code server took beside the runs, from the first run's creation
        # (seen within 0.5 s) to the last one's end (seen within 2 s, so up to 2 s of the services'
        # idle loops after it count too). Not from the submission: before the first run,
        # the forkserver finishes importing torch and timm (~8 CPU-s on cpu2-avx2), which the
        # runs never wait for (session 24; the figure included it before)
        daemon_cpu = _service_cpu_s(daemon.pid, code_server.pid) - cpu_at_first_run
        own_cpu = time.process_time() - own_at_first_run  # this process's polling and disk sampling
        end = max(r.end_time for r in runs)
        first_created = min(r.create_timestamp.timestamp() for r in runs)
        ok = sum(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        stored = len(instance.get_materialized_partitions(dg.AssetKey("stored_features")))
        engine_logs = [
            json.loads(e.user_message.split("engine: ", 1)[1])
            for r in runs
            for e in instance.all_logs(r.dagster_run.run_id)
            if e.user_message and "engine: {" in e.user_message
        ]
    finally:
        for proc in (daemon, code_server):
            if proc is None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return {
        "videos": len(keys),
        "runs": len(runs),
        "runs_succeeded": ok,
        "videos_stored": stored,
        "register_s": register_s,
        "backfill_s": end - t0,
        "pickup_s": first_created - t0,
        "runs_s": end - first_created,
        "peak_work_bytes": peak[0],
        "intermediate_bytes_left": _dir_bytes(home.work / "artifacts"),
        "engine_in_runs": engine_logs,
        "daemon_cpu_s": daemon_cpu,
        "benchmark_cpu_s": own_cpu,
        "home": home,
    }


# -- one video through the CLI, and its memory --------------------------------------------------
def materialize(home: Home, key: str, select: str) -> tuple[float, int]:
    """``dagster asset materialize`` as a whole command: (seconds, peak RSS bytes of the process tree)."""
    cmd = [sys.executable, "-m", "dagster", "asset", "materialize", "-f", str(home.defs_file), "--select", select]
    cmd += ["--partition", key]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=home.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-2000:]}")
    return took, usage.ru_maxrss * 1024


def one_video(root: Path, folder: Path, batch: int) -> dict:
    """One 10-s video through ``--select '*'``; peak RSS of a 1-min vs a 20-min video."""
    home = Home(root, batch)
    out = {}
    for name in SINGLES:
        path = folder / f"{name}.mp4"
        if not path.exists():
            _encode(_single(folder, name))
        sub = root / f"videos_{name}"
        sub.mkdir(exist_ok=True)
        shutil.copyfile(path, sub / path.name)
        (key,) = home.register(sub)[0]
        select = "*" if name == "ten" else ",".join(VIDEO_ASSETS)
        out[name] = materialize(home, key, select)
    return {
        "materialize_one_video_s": out["ten"][0],
        "rss_1min_bytes": out["one_min"][1],
        "rss_20min_bytes": out["twenty_min"][1],
        "rss_ratio_20min_vs_1min": out["twenty_min"][1] / out["one_min"][1],
    }


def hardware_decode(paths: list[Path], seconds: float = 5.0) -> dict:
    """Frames/s of PyAV decoders on the 1080p videos: one CPU decoder (FFmpeg's threads) vs one
    CUDA decoder (NVDEC, if PyAV's FFmpeg and the driver provide it; the reason if not), then what
    the host can decode at once: a single-threaded CPU decoder per core vs four NVDEC sessions."""
    out = {"cpu_decode_fps": _decode_rate((paths[0], False, seconds, True))}
    out["cpu_all_cores_decode_fps"] = decode_capacity(paths, os.cpu_count() or 1, False, seconds)
    try:
        out["cuda_decode_fps"] = _decode_rate((paths[0], True, seconds, True))
        out["nvdec_x4_decode_fps"] = decode_capacity(paths, 4, True, seconds)
    except Exception as e:  # noqa: BLE001 - reported, not fatal
        out["cuda_decode_error"] = f"{type(e).__name__}: {e}"
    return out


def _decode_rate(job: tuple) -> float:
    """Frames/s decoding ``path`` (again and again) for ``seconds``: NVDEC if ``cuda``, else the
    CPU with FFmpeg's threads (``threads``) or one thread."""
    import av

    path, cuda, seconds, threads = job
    kw = {}
    if cuda:
        from av.codec.hwaccel import HWAccel

        kw["hwaccel"] = HWAccel(device_type="cuda", allow_software_fallback=False)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        with av.open(str(path), **kw) as c:
            stream = c.streams.video[0]
            if threads:
                stream.thread_type = "AUTO"
            else:
                stream.thread_count = 1
            for _ in c.decode(stream):
                n += 1
                if time.perf_counter() - t0 > seconds:
                    break
    return n / (time.perf_counter() - t0)


def decode_capacity(paths: list[Path], procs: int, cuda: bool, seconds: float) -> float:
    """Frames/s of ``procs`` decoder processes at once, each on its own video (spawned: the parent
    has a CUDA context, which forked children could not use)."""
    import multiprocessing

    jobs = [(paths[i % len(paths)], cuda, seconds, False) for i in range(procs)]
    with multiprocessing.get_context("spawn").Pool(procs) as pool:
        return float(sum(pool.map(_decode_rate, jobs)))


# the GPU row's plans: every frame, one image each (what 1080p decode allows sets the pace), and the
# classic ten-crop over every frame (ten images per decoded frame: the model sets the pace)
GPU_PLANS = {
    "every_frame": {"mode": "every_n", "every_n_frames": 1, "frames_per_clip": 1},
    "ten_crop": {"mode": "every_n", "every_n_frames": 1, "frames_per_clip": 1, "crop": "ten"},
}


def gpu(args, cache: Path, batch: int) -> dict:
    """ViT-B/16 bf16 compiled on 1080p videos: bare vs inside a real backfill, and the decoders."""
    sys.path.insert(0, str(Path(__file__).parent))
    from embed import bare  # noqa: PLC0415 - the bare forward embed.py measures

    from vid_assets.extractors import create_extractor

    paths = prepare(cache / "1080p", args.gpu_videos, args.gpu_seconds, (1920, 1080))
    # --rehearse: the same row on this CPU, small, uncompiled, so a change that breaks the step is
    # found here rather than in a lent GPU's 15 minutes (its figures mean nothing)
    device, compile_, batch_size, bare_s = ("cpu", False, 8, 2.0) if args.rehearse else ("cuda", True, 256, 20.0)
    ext = create_extractor("timm:vit_base_patch16_224", pretrained=False, device=device, compile=compile_)
    ext.batch_size = batch_size
    result = {"bare_images_per_s": bare(ext, batch_size, bare_s), **hardware_decode(paths)}
    del ext
    model = {"name": "vid_bench_models:vit_random", "device": device, "compile": compile_, "batch_size": batch_size}
    for name, plan in GPU_PLANS.items():
        # the ten-crop row on the first third of the videos: ten times the images per frame
        videos = paths if name == "every_frame" else paths[: max(2, len(paths) // 3)]
        with tempfile.TemporaryDirectory(prefix="vid_assets_backfill_gpu_") as tmp:
            subset = Path(tmp) / "videos"
            subset.mkdir()
            for p in videos:
                os.link(p, subset / p.name)
            # submitted before the daemon starts: its first pass takes it, no 30-s pick-up wait
            # (not the CPU rows' way: there the runs would share the cores with the daemon's warm-up)
            bf = run_backfill(Path(tmp) / "backfill", subset, batch, plan, model, early=True)
        bf.pop("home")
        row = _in_asset(bf, result["bare_images_per_s"])
        result.update(row if name == "every_frame" else {f"{k}_{name}": v for k, v in row.items()})
    return result


def _in_asset(bf: dict, bare_images_per_s: float) -> dict:
    """The rates inside the asset (the step's engine log lines) against the bare model's."""
    inside = bf["engine_in_runs"]
    seconds = sum(e["seconds"] for e in inside)
    steady = min(e.get("steady_images_per_s", 0.0) for e in inside)
    # the model's own rate inside the asset (device time of its passes, CUDA events; without the
    # waits for decode): what the asset does to the model, apart from what 1080p decode allows
    steady_model = min(e.get("steady_model_images_per_s", 0.0) for e in inside)
    return {
        "backfill": bf,
        "images_per_s_in_asset": sum(e["images"] for e in inside) / seconds,
        "decoded_frames_per_s_in_asset": sum(e["decoded_frames"] for e in inside) / seconds,
        "videos_per_s_in_asset": sum(e["videos"] for e in inside) / seconds,
        "backfill_videos_per_s": bf["videos"] / bf["runs_s"],
        "steady_images_per_s_in_asset": steady,
        "asset_vs_bare": steady / bare_images_per_s,
        "steady_model_images_per_s_in_asset": steady_model,
        "model_in_asset_vs_bare": steady_model / bare_images_per_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default=None)
    ap.add_argument("--quick", action="store_true", help="half the videos of each set")
    ap.add_argument("--batch", type=int, default=None, help="videos per run (default: the product's BATCH)")
    ap.add_argument("--limit", type=int, default=0, help="at most this many videos per set (a quick try)")
    ap.add_argument(
        "--rounds", type=int, default=1, help="backfills per set, each between two engine passes (median ratio)"
    )
    ap.add_argument("--only-one-video", action="store_true", help="only the one-video command and the RSS pair")
    ap.add_argument("--gpu", action="store_true", help="the GPU row: ViT-B/16 on 1080p (a CUDA host)")
    ap.add_argument("--gpu-videos", type=int, default=28)
    ap.add_argument("--gpu-seconds", type=float, default=10.0)
    ap.add_argument("--rehearse", action="store_true", help="with --gpu: the row's path on the CPU, tiny, for checking")
    ap.add_argument("--video-dir", default=str(Path(tempfile.gettempdir()) / f"vid_assets_backfill_videos_{PRESET}"))
    args = ap.parse_args()
    from vid_assets.defs.videos.assets import BATCH

    batch = args.batch or BATCH
    if args.gpu:
        result = {
            "machine": f"{platform.node()} {cpu_model()} x{os.cpu_count()}",
            **gpu(args, Path(args.video_dir), batch),
        }
        print(json.dumps(result, indent=1, default=str))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2, default=str))
        return
    scale = 2 if args.quick else 1
    if args.only_one_video:
        with tempfile.TemporaryDirectory(prefix="vid_assets_backfill_") as tmp:
            result = one_video(Path(tmp) / "one", Path(args.video_dir), batch)
        print(json.dumps(result, indent=1))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
        return
    sets = {"10s": (256 // scale, 10.0, (320, 240)), "2s": (512 // scale, 2.0, (160, 120))}
    if args.limit:
        sets = {k: (min(n, args.limit), s, size) for k, (n, s, size) in sets.items()}
    cache = Path(args.video_dir)
    result: dict = {
        "machine": f"{platform.node()} {cpu_model()} x{os.cpu_count()}",
        "batch": batch,
        "quick": args.quick,
    }
    with tempfile.TemporaryDirectory(prefix="vid_assets_backfill_") as tmp:
        tmp = Path(tmp)
        for name, (count, seconds, size) in sets.items():
            folder = cache / f"{name}_{size[0]}x{size[1]}"
            singles = [_single(cache, n) for n in reversed(SINGLES)] if name == "10s" else []  # longest first
            paths = prepare(folder, count, seconds, size, extra=singles)
            subset = tmp / f"videos_{name}"
            subset.mkdir()
            for p in paths:
                os.link(p, subset / p.name) if p.stat().st_dev == subset.stat().st_dev else shutil.copy(p, subset)
            # each backfill between two passes of the engine alone, their mean its floor: one pass
            # drifted by +-5 % from run to run here, as much as the 2-s set's margin; with
            # --rounds N the ratios are the medians of N such backfills
            engines = [run_engine(paths, tmp / f"engine_{name}_0.zarr", DEFAULT_PLAN)]
            bfs = []
            for r in range(args.rounds):
                bfs.append(run_backfill(tmp / f"backfill_{name}_{r}", subset, batch, DEFAULT_PLAN))
                bfs[-1].pop("home")
                engines.append(run_engine(paths, tmp / f"engine_{name}_{r + 1}.zarr", DEFAULT_PLAN))
            floors = [(a + b) / 2 for a, b in zip(engines, engines[1:], strict=False)]
            ratios = [e / b["runs_s"] for e, b in zip(floors, bfs, strict=True)]
            i = ratios.index(statistics.median_low(ratios))  # the median round: its figures in the row
            bf, engine_s = bfs[i], floors[i]
            row = {
                "videos": count,
                "engine_s": engine_s,
                "engine_s_before": engines[i],
                "engine_s_after": engines[i + 1],
            }
            row.update({f"backfill_{k}": v for k, v in bf.items()})
            row["engine_videos_per_s"] = count / engine_s
            row["backfill_videos_per_s"] = count / bf["runs_s"]
            if args.rounds > 1:
                row["engine_passes_s"], row["ratio_per_round"] = engines, ratios
                row["backfill_runs_s_per_round"] = [b["runs_s"] for b in bfs]
            result[f"backfill_vs_engine_{name}"] = statistics.median(ratios)
            result[f"backfill_vs_engine_{name}_incl_pickup"] = statistics.median(
                [e / b["backfill_s"] for e, b in zip(floors, bfs, strict=True)]
            )
            result[name] = row
            if name == "10s":
                result["intermediate_bytes_left"] = max(b["intermediate_bytes_left"] for b in bfs)
                result["peak_work_bytes"] = max(b["peak_work_bytes"] for b in bfs)
                naive_s = run_naive(paths, tmp / "naive_npy")
                per_frame = run_backfill(tmp / "backfill_1fps", subset, batch, ONE_FPS)
                per_frame.pop("home")
                row["naive_s"] = naive_s
                row.update({f"backfill_1fps_{k}": v for k, v in per_frame.items()})
                result["backfill_vs_naive_10s"] = naive_s / per_frame["runs_s"]
                result["backfill_vs_naive_10s_incl_pickup"] = naive_s / per_frame["backfill_s"]
                result["intermediate_bytes_left"] += per_frame["intermediate_bytes_left"]
                result["peak_work_bytes"] = max(result["peak_work_bytes"], per_frame["peak_work_bytes"])
            print(json.dumps({name: row}, indent=1), flush=True)
        result.update(one_video(tmp / "one", cache, batch))
    width = max(map(len, result))
    for k, v in result.items():
        if not isinstance(v, dict):
            print(f"{k:<{width}}  {round(v, 3) if isinstance(v, float) else v}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
