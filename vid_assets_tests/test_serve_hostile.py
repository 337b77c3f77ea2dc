"""The prediction service against hostile clients, on a real uvicorn server on loopback:
slow uploads (slowloris), huge frames, broken multipart bodies, clients that vanish."""

from __future__ import annotations

import logging
import socket
import threading
import time

import httpx
import pytest
from httpx_sse import connect_sse

from vid_assets.extractors.loading import load_extractor
from vid_assets.fit import PipelineConfig
from vid_assets.samples import write_synthetic_video
from vid_assets.serve.app import create_app
from vid_assets.serve.predict import Limits, Predictor
from vid_assets_tests.serving import running

LIMITS = Limits(max_streams=2, body_idle_s=2.0, body_grace_s=1.0, min_body_rate=32 * 1024, max_bodies_per_client=4)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    extractor = load_extractor("efficientnet_lite0", device="cpu")
    app = create_app(Predictor(extractor, PipelineConfig()), limits=LIMITS)
    with running(app) as url:
        yield url, app.state.service


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_synthetic_video(tmp_path_factory.mktemp("hostile") / "v.mp4", seconds=2, fps=12, size=(160, 120))


def _slow_upload(base: str, out: list, i: int) -> None:
    """Headers for a 1 MB body, then a byte every 0.3 s (a slowloris), until the server answers."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(f"POST /v1/predict HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1000000\r\n\r\n".encode())
        s.settimeout(0.3)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 20:
            try:
                answer = s.recv(4096)
                out[i] = answer.split(b"\r\n", 1)[0].decode()
                return
            except TimeoutError:
                try:
                    s.sendall(b"\0")
                except OSError:
                    return
        out[i] = "no answer"


def test_slow_uploads_cannot_starve_other_clients(server, video):
    """Before: eight slow uploads took all stream slots before sending their bodies, and every
    other client got 429 for as long as they trickled."""
    base, svc = server
    answers: list = [None] * 8
    slow = [threading.Thread(target=_slow_upload, args=(base, answers, i)) for i in range(8)]
    for t in slow:
        t.start()
    time.sleep(0.5)
    other = httpx.Client(timeout=60, transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    with other, connect_sse(other, "POST", f"{base}/v1/predict", content=video.read_bytes()) as es:
        assert es.response.status_code == 200
        events = [e.event for e in es.iter_sse()]
    assert events[0] == "start" and events[-1] == "done"
    for t in slow:
        t.join(timeout=30)
    # four were refused at once (one address, four bodies at a time), four timed out on their rate
    assert sorted(a.split(" ", 2)[1] for a in answers) == ["408"] * 4 + ["429"] * 4, answers
    assert svc.active == 0 and svc.bodies == {}


def test_huge_frames_are_refused_from_the_header(video):
    """Before: a 10000x10000 upload was decoded; now the stream header is enough to refuse it."""
    extractor = load_extractor("efficientnet_lite0", device="cpu")
    app = create_app(Predictor(extractor, PipelineConfig()), limits=Limits(max_pixels=160 * 120 - 1))
    with running(app) as base, httpx.Client(timeout=60) as c:
        r = c.post(f"{base}/v1/predict", content=video.read_bytes())
        assert r.status_code == 413 and "160x120 exceed the 19199 pixel limit" in r.json()["error"]
        assert c.get(f"{base}/healthz").json()["active_streams"] == 0


def test_a_broken_multipart_body_gets_a_json_error(server):
    """Before: Starlette's plain-text 400."""
    base, _ = server
    with httpx.Client(timeout=30) as c:
        r = c.post(
            f"{base}/v1/predict",
            content=b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n\r\nabc',
            headers={"content-type": "multipart/form-data; boundary=xyz"},
        )
        r2 = c.post(f"{base}/v1/predict", content=b"x", headers={"content-type": "multipart/form-data"})
    for resp in (r, r2):
        assert resp.status_code == 400 and resp.headers["content-type"] == "application/json", resp.text
        assert "multipart" in resp.json()["error"] or "file part" in resp.json()["error"]


def test_a_client_that_leaves_mid_stream_is_one_info_line(server, video, caplog):
    """Before: a traceback at ERROR for every client that closed its connection."""
    base, _ = server
    long = write_synthetic_video(video.parent / "long.mp4", seconds=60, fps=12, size=(160, 120), seed=3)
    with caplog.at_level(logging.INFO), httpx.Client(timeout=60) as c:
        with connect_sse(c, "POST", f"{base}/v1/predict", content=long.read_bytes()) as es:
            it = es.iter_sse()
            next(it)
            next(it)
        deadline = time.monotonic() + 10
        while c.get(f"{base}/healthz").json()["active_streams"] and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert any("left mid-stream" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)


SERVER = """
import sys, uvicorn
from vid_assets.extractors.loading import load_extractor
from vid_assets.fit import PipelineConfig
from vid_assets.serve.app import create_app
from vid_assets.serve.predict import Predictor
app = create_app(Predictor(load_extractor("efficientnet_lite0", device="cpu"), PipelineConfig()))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def test_memory_under_eight_uploads_at_the_frame_size_cap_is_bounded_and_returned(tmp_path):
    """Before: eight 10000x10000 uploads took the service to 6.8 GB, 4.4 GB kept afterwards. Such
    frames are now refused from the header; at the cap (4096x2160) eight concurrent uploads stay
    under 3 GiB, and once idle the server hands the burst's memory back (within 0.75 GiB of its
    size before the burst). Measured on the 2-core VM: 0.85 -> 2.19 GiB peak -> 1.23 GiB after. On
    cpu2-avx2 the burst's thread arenas kept ~0.9 GiB (failing here) until the service capped them
    at two (``runtime.memory.limit_arenas``): 0.95 -> 1.55 GiB after."""
    import subprocess
    import sys
    from pathlib import Path

    from vid_assets.devtools.net import free_port

    video = write_synthetic_video(tmp_path / "4k.mp4", seconds=1.0, fps=4, size=(4096, 2160), seed=1)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    base = f"http://127.0.0.1:{port}"

    def memory() -> tuple[int, int]:
        status = Path(f"/proc/{proc.pid}/status").read_text().splitlines()
        kib = {line.split(":")[0]: int(line.split()[1]) for line in status if line.startswith(("VmRSS", "VmHWM"))}
        return kib["VmRSS"] * 1024, kib["VmHWM"] * 1024

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        before = memory()[0]
        data, ends = video.read_bytes(), []

        def client(i: int) -> None:  # eight addresses: the per-client body cap is not what is tested
            transport = httpx.HTTPTransport(local_address=f"127.0.0.{i + 2}")
            with (
                httpx.Client(timeout=300, transport=transport) as c,
                connect_sse(c, "POST", f"{base}/v1/predict", content=data) as es,
            ):
                ends.append([e.event for e in es.iter_sse()][-1])

        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(1.0)
        after, peak = memory()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert ends == ["done"] * 8
    assert peak < 3 << 30, peak
    assert after - before < 0.75 * (1 << 30), (before, after)
