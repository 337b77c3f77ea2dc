"""Loopback helpers for tests and benchmarks: free ports, waiting for a server to come up."""

from __future__ import annotations

import socket
import subprocess
import time


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
