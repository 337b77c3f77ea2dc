"""Loopback helpers for tests and benchmarks: free ports, waiting for a server to come up."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listening on {port}")


def wait_http(url: str, proc: subprocess.Popen | None = None, timeout: float = 180):
    """GET ``url`` until it answers 2xx; returns the response. Raises ``RuntimeError`` (with the
    process's stderr when it was piped) if ``proc`` exits first or ``timeout`` passes."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(url, timeout=2)
            response.raise_for_status()
            return response
        except httpx.HTTPError:
            if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
                err = proc.stderr.read() if proc is not None and proc.stderr and proc.poll() is not None else ""
                raise RuntimeError(f"{url} did not come up\n{err}") from None
            time.sleep(0.3)


@contextlib.contextmanager
def dagster_webserver(home: str | os.PathLike[str], data_dir: str | os.PathLike[str]) -> Iterator[str]:
    """A real ``dagster-webserver`` on loopback over the instance in ``home`` (this repo's code
    location, data paths under ``data_dir``); yields its base URL and stops it on exit. Its log goes
    to a temporary file (a pipe nobody reads could fill and stall it) and is shown if it fails to start."""
    port = free_port()
    exe = Path(sys.executable).parent / "dagster-webserver"
    env = {**os.environ, "DAGSTER_HOME": str(home), "VID_ASSETS_DATA": str(data_dir)}
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [str(exe), "-m", "vid_assets.definitions", "-h", "127.0.0.1", "-p", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            try:
                wait_http(base + "/server_info", proc)
            except RuntimeError as e:
                log.seek(0)
                raise RuntimeError(f"{e}\n{log.read().decode(errors='replace')[-3000:]}") from None
            yield base
        finally:
            _stop(proc)


class JsonSink:
    """A real HTTP server on loopback that keeps the JSON bodies POSTed to it (``bodies``), in
    order: what a progress callback's receiving end sees. ``with JsonSink() as sink: sink.url``."""

    def __init__(self) -> None:
        import http.server
        import json
        import threading

        self.bodies: list = []
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                length = int(self.headers.get("Content-Length") or 0)
                sink.bodies.append(json.loads(self.rfile.read(length) or b"null"))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:  # quiet
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/progress"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> JsonSink:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def s3_server() -> Iterator[dict[str, str]]:
    """A real S3 API (moto's server, ``pip install 'moto[server]'``) on loopback, in its own process;
    yields the environment a client needs (endpoint, test credentials, region) and stops it on exit."""
    port = free_port()
    exe = Path(sys.executable).parent / "moto_server"
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
        endpoint = f"http://127.0.0.1:{port}"
        try:
            try:
                wait_http(endpoint + "/moto-api/", proc, timeout=60)
            except RuntimeError as e:
                log.seek(0)
                raise RuntimeError(f"{e}\n{log.read().decode(errors='replace')[-3000:]}") from None
            yield {
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": "AKIAVIDASSETSTEST",
                "AWS_SECRET_ACCESS_KEY": "vid-assets-test-secret-do-not-log",
                "AWS_DEFAULT_REGION": "us-east-1",
            }
        finally:
            _stop(proc)


@contextlib.contextmanager
def gcs_server() -> Iterator[dict[str, str]]:
    """A real Google Cloud Storage JSON API (``gcp-storage-emulator``, pip) on loopback, in its own
    process; yields the environment gcsfs needs and stops it on exit. ``STORAGE_EMULATOR_HOST`` is
    the endpoint (no credentials: the emulator takes anonymous calls).
    ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false``: gcsfs otherwise asks each bucket whether it is a
    zonal one over gRPC, which the emulator does not speak. Without Google credentials that probe
    fails at once and gcsfs falls back to JSON calls; with credentials on the machine it waits for
    the gRPC call to time out. gcsfs reads the variable when it is imported."""
    port = free_port()
    with tempfile.TemporaryFile() as log:  # the emulator, its multipart uploads read exactly (gcs_emulator.py)
        cmd = [sys.executable, "-m", "vid_assets.devtools.gcs_emulator", "start"]
        cmd += ["--host", "127.0.0.1", "--port", str(port), "--in-memory"]
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            try:
                wait_port(port, timeout=60)
            except TimeoutError as e:
                log.seek(0)
                raise RuntimeError(f"{e}\n{log.read().decode(errors='replace')[-3000:]}") from None
            yield {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}", "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}
        finally:
            _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    """Stop a test server: SIGTERM, then SIGKILL if it has not exited within 10 s (the GCS
    emulator sometimes hangs in its shutdown while a client's keep-alive connection is open)."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
