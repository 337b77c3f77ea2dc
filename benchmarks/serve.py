"""Prediction service under load: C concurrent SSE clients on loopback against `vid-assets serve`.

    python benchmarks/serve.py --json out.json [--clients 8 --requests 3 --seconds 10 --device cpu]

The server runs as its own process (so its peak RSS is its own: VmHWM from /proc); each client
thread posts ``--requests`` videos one after another and reads every event. Bounded in count and in
time (``--timeout``). Reports aggregate clips/s, p50/p95 time to the first ``clip`` event (from
sending the request), per-request wall time, the batcher's mean pass size and the server's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from httpx_sse import connect_sse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vid_assets.devtools.net import free_port, wait_http  # noqa: E402
from vid_assets.samples import write_synthetic_video  # noqa: E402


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))] if values else float("nan")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=3, help="videos each client sends, one after another")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each test video")
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--extractor", default="efficientnet_lite0")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=0)
    ap.add_argument("--max-wait-ms", type=float, default=5.0)
    ap.add_argument("--timeout", type=float, default=300.0, help="whole-run bound (s)")
    ap.add_argument("--json")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="vid_assets_serve_bench_"))
    w, h = (int(x) for x in args.size.split("x"))
    videos = [
        write_synthetic_video(tmp / f"v{i}.mp4", seconds=args.seconds, fps=24, size=(w, h), seed=i)
        for i in range(min(args.clients, 4))
    ]
    port = free_port()
    cmd = [
        sys.executable, "-m", "vid_assets.cli", "serve", "--port", str(port), "--device", args.device,
        "--extractor", args.extractor, "--batch-size", str(args.batch_size), "--max-wait-ms", str(args.max_wait_ms),
        "--max-streams", str(args.clients),
    ]  # fmt: skip
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            health = wait_http(f"{base}/healthz", server, timeout=180).json()
        except RuntimeError as e:
            raise SystemExit(str(e)) from None
        # warm-up request (first-pass allocations, lazy imports) outside the measurement
        with (
            httpx.Client(timeout=120) as c,
            connect_sse(c, "POST", f"{base}/v1/predict", content=videos[0].read_bytes()) as es,
        ):
            for _ in es.iter_sse():
                pass
        rss_idle = peak_rss_mib(server.pid)

        records: list[dict] = []
        lock = threading.Lock()
        stop_at = time.monotonic() + args.timeout

        def client(i: int) -> None:
            with httpx.Client(timeout=args.timeout) as c:
                for r in range(args.requests):
                    if time.monotonic() > stop_at:
                        return
                    body = videos[(i + r) % len(videos)].read_bytes()
                    t0 = time.perf_counter()
                    first, clips, err = None, 0, None
                    with connect_sse(c, "POST", f"{base}/v1/predict", content=body) as es:
                        for ev in es.iter_sse():
                            if ev.event == "clip":
                                clips += 1
                                first = first if first is not None else time.perf_counter() - t0
                            elif ev.event == "error":
                                err = ev.json()["message"]
                    with lock:
                        records.append(
                            {"ttfe_s": first, "clips": clips, "wall_s": time.perf_counter() - t0, "error": err}
                        )

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(args.timeout + 30)
        wall = time.perf_counter() - t0
        health = httpx.get(f"{base}/healthz", timeout=5).json()
        rss_peak = peak_rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(20)

    ttfe = [r["ttfe_s"] for r in records if r["ttfe_s"] is not None]
    clips = sum(r["clips"] for r in records)
    result = {
        "benchmark": "serve",
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus",
        "extractor": health["extractor"],
        "device": health["device"],
        "clients": args.clients,
        "requests": len(records),
        "errors": sum(r["error"] is not None for r in records),
        "video": f"{args.seconds:g} s {w}x{h} 24 fps H.264",
        "clips": clips,
        "wall_s": round(wall, 3),
        "clips_per_s": round(clips / wall, 2),
        "ttfe_p50_s": round(pct(ttfe, 0.5), 4),
        "ttfe_p95_s": round(pct(ttfe, 0.95), 4),
        "request_wall_p50_s": round(pct([r["wall_s"] for r in records], 0.5), 3),
        "batcher": health["batcher"],
        "rss_idle_mib": round(rss_idle, 1),
        "rss_peak_mib": round(rss_peak, 1),
    }
    rows = [(k, v) for k, v in result.items() if k != "batcher"] + [
        ("mean pass (clips)", round(health["batcher"]["mean_batch"], 2)),
        ("passes shared by >1 request", health["batcher"]["mixed_batches"]),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
