"""One server's shared state and answers: the stream slots, the URL allowlist, counters, and
driving a blocking event generator as Server-Sent Events."""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urljoin, urlparse

import anyio
import httpx
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse

from vid_assets.runtime.memory import limit_arenas, release_free_memory
from vid_assets.serve.predict import Event, Limits, Predictor

URL_SCHEMES = ("http", "https", "rtmp", "rtmps", "rtsp")
log = logging.getLogger("vid_assets.serve")


class TooLarge(Exception):
    pass


class TooSlow(Exception):
    """The body stopped coming, or comes slower than the minimum rate (408)."""


class Refused(Exception):
    """A URL the server will not pull (403)."""


class Service:
    """Shared state of one server: the predictor, limits, the stream slots and counters."""

    def __init__(self, predictor: Predictor, limits: Limits, allow_hosts: tuple[str, ...], spool_dir: str | None):
        limit_arenas()  # what a burst allocated on request threads can go back once idle (release)
        predictor.extractor.keep_no_pools()  # and what the model's passes allocated
        self.predictor = predictor
        self.limits = limits
        self.allow_hosts = tuple(h.lower() for h in allow_hosts)
        self.spool_dir = spool_dir
        self.active = 0
        self.bodies: dict[str, int] = {}  # client address -> bodies being read
        self.counters = {"requests": 0, "completed": 0, "errors": 0, "rejected": 0, "disconnected": 0}

    # -- slots -----------------------------------------------------------------------------------
    def acquire(self) -> JSONResponse | None:
        """Take a stream slot, or the 429 to send. Runs on the event loop: no lock needed."""
        if self.active >= self.limits.max_streams:
            self.counters["rejected"] += 1
            return error_response(
                f"too many concurrent streams (limit {self.limits.max_streams})", 429, {"Retry-After": "1"}
            )
        self.active += 1
        self.counters["requests"] += 1
        return None

    def release(self) -> None:
        self.active -= 1
        if self.active == 0:  # idle: what the last burst allocated goes back to the OS
            release_free_memory()

    def host_allowed(self, url: str) -> str | None:
        """None if ``url`` may be pulled, else why not."""
        parsed = urlparse(url)
        if parsed.scheme.lower() not in URL_SCHEMES:
            return f"scheme {parsed.scheme or '(none)'!r} not allowed (use {', '.join(URL_SCHEMES)})"
        host = (parsed.hostname or "").lower()
        if not host:
            return "URL has no host"
        for allowed in self.allow_hosts:
            if host == allowed or (allowed.startswith("*.") and host.endswith(allowed[1:])):
                return None
        return f"host {host!r} is not on the server's allowlist"

    async def follow_redirects(self, url: str, hops: int = 5) -> str:
        """The URL an HTTP(S) ``url`` finally serves from, following only redirects whose target is
        allowlisted too (a redirect is the classic way around an SSRF host check)."""
        async with httpx.AsyncClient(follow_redirects=False, timeout=15) as client:
            for _ in range(hops + 1):
                async with client.stream("GET", url, headers={"Range": "bytes=0-0"}) as r:
                    if not r.is_redirect:
                        if r.status_code >= 400:
                            raise httpx.HTTPStatusError(f"HTTP {r.status_code}", request=r.request, response=r)
                        return url
                    target = urljoin(url, r.headers["location"])
                if (why := self.host_allowed(target)) is not None:
                    raise Refused(f"{url} redirects to {target}: {why}")
                url = target
        raise Refused(f"more than {hops} redirects")

    # -- streaming -------------------------------------------------------------------------------
    def sse(self, events: Iterator[Event], cancel: threading.Event, cleanup=None) -> EventSourceResponse:
        """Drive the blocking event generator from worker threads and send each event as SSE.

        The request's slot, temp file and decode thread are released exactly once: when the
        stream ends or the client leaves (the generator's ``finally``), or — if the client left
        before the stream even started, so the generator never ran — by the response's background
        task, which sse-starlette runs after its task group in every case.
        """
        state = {"released": False}

        async def finish(finished: bool) -> None:
            if state["released"]:
                return
            state["released"] = True
            cancel.set()  # the client left (or we are done): stop decoding and computing
            if not finished:
                self.counters["disconnected"] += 1
                log.info("client left mid-stream: its decoding and passes stopped")
            # Runs under the cancelled scope of a disconnect: shield, or the await would raise at
            # once and the decode thread would never be joined.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(events.close)
            if cleanup is not None:
                cleanup()
            self.release()  # only now: a free slot means the request's work has stopped

        async def gen() -> AsyncIterator[ServerSentEvent]:
            finished = False
            try:
                while True:
                    item = await anyio.to_thread.run_sync(next, events, None)
                    if item is None:
                        finished = True
                        return
                    name, data = item
                    if name == "done":
                        self.counters["completed"] += 1
                    elif name == "error":
                        self.counters["errors"] += 1
                    yield ServerSentEvent(data=json.dumps(data, separators=(",", ":")), event=name)
            finally:
                await finish(finished)

        return EventSourceResponse(
            gen(),
            ping=15,
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
            background=BackgroundTask(finish, False),
        )


def error_response(message: str, status: int, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


def flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in ("1", "true", "yes")


def media_refusal(info, limits: Limits) -> str | None:
    """Why a probed video is refused before any work (413), or None."""
    if info.width * info.height > limits.max_pixels:
        return f"frames of {info.width}x{info.height} exceed the {limits.max_pixels} pixel limit"
    if math.isfinite(info.duration_s) and info.duration_s > limits.max_duration_s:
        return f"video is {info.duration_s:.1f} s long; the limit is {limits.max_duration_s:g} s"
    return None
