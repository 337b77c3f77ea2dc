"""A real uvicorn server on loopback, in a background thread, for the service tests."""

from __future__ import annotations

import contextlib
import threading
import time

import uvicorn

from vid_assets.devtools.net import free_port


@contextlib.contextmanager
def running(app, *, startup_timeout: float = 30.0):
    """Serve ``app`` on 127.0.0.1:<free port>; yields the base URL; shuts down (lifespan included)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
