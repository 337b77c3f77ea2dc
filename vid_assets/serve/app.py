"""The prediction service: a Starlette app that streams :mod:`vid_assets.serve.predict` events as
Server-Sent Events (framing, pings and disconnect handling by ``sse-starlette``).

Endpoints
    POST /v1/predict          whole video (raw body or multipart ``file``) -> SSE
    POST /v1/predict/stream   live upload with chunked transfer (e.g. MPEG-TS from ffmpeg) -> SSE
    GET  /v1/predict?url=...  server pulls an allowlisted URL (HTTP(S) file, HLS, RTMP/RTSP) -> SSE
    GET  /healthz             model, limits, load and batching counters
    GET  /                    a page to pick a file and watch per-clip labels arrive

Events: ``start`` (request id, duration, expected clips, model and plan), one ``clip`` per clip in
order (``index, start_s, end_s, top_k`` and ``embedding`` with ``?embeddings=1``), then ``done``
(totals and timing) or ``error`` (``message``, ``status``). Problems found before streaming
(too large, not a video, too long, too many streams, host not allowed) are plain HTTP errors with a
JSON ``{"error": ...}`` body: 400/403/413/422/429.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from urllib.parse import urljoin, urlparse

import anyio
import httpx
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from vid_assets import settings
from vid_assets.media import probe
from vid_assets.media.decode import VideoDecodeError
from vid_assets.media.opening import is_live, open_remote
from vid_assets.runtime.memory import release_free_memory
from vid_assets.serve.pipe import BytePipe
from vid_assets.serve.predict import DEFAULT_LIMITS, Event, Limits, Predictor

URL_SCHEMES = ("http", "https", "rtmp", "rtmps", "rtsp")
log = logging.getLogger("vid_assets.serve")
LIVE_OPEN = {"options": {"analyzeduration": "1000000", "probesize": "1000000"}}  # start within ~1 s of input


class _TooLarge(Exception):
    pass


class _TooSlow(Exception):
    """The body stopped coming, or comes slower than the minimum rate (408)."""


class _Refused(Exception):
    """A URL the server will not pull (403)."""


class Service:
    """Shared state of one server: the predictor, limits, the stream slots and counters."""

    def __init__(self, predictor: Predictor, limits: Limits, allow_hosts: tuple[str, ...], spool_dir: str | None):
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
            return _error(f"too many concurrent streams (limit {self.limits.max_streams})", 429, {"Retry-After": "1"})
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
                    raise _Refused(f"{url} redirects to {target}: {why}")
                url = target
        raise _Refused(f"more than {hops} redirects")

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


def _error(message: str, status: int, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return _error(str(exc.detail), exc.status_code, getattr(exc, "headers", None))


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in ("1", "true", "yes")


def _guarded(request: Request, limits: Limits) -> Request:
    """The request with a ``receive`` that enforces the body limits: size, idle time, rate."""
    receive, started, total = request.receive, anyio.current_time(), 0

    async def guarded_receive():
        nonlocal total
        try:
            with anyio.fail_after(limits.body_idle_s):
                message = await receive()
        except TimeoutError:
            raise _TooSlow(f"no upload bytes for {limits.body_idle_s:g} s") from None
        total += len(message.get("body", b""))
        if total > limits.max_upload_bytes:
            raise _TooLarge
        elapsed = anyio.current_time() - started
        if message.get("more_body") and elapsed > limits.body_grace_s and total / elapsed < limits.min_body_rate:
            raise _TooSlow(f"upload slower than {limits.min_body_rate} bytes/s")
        return message

    return Request(request.scope, guarded_receive)


async def _spool_body(request: Request, dest, limits: Limits) -> int:
    """Copy the request body (raw, or the first file part of a multipart form) to ``dest``."""
    from starlette.formparsers import MultiPartException

    content_type = request.headers.get("content-type", "")
    request = _guarded(request, limits)
    if content_type.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=1, max_fields=16)
        except (MultiPartException, HTTPException) as e:  # Starlette answers these in plain text
            raise ValueError(f"bad multipart form: {getattr(e, 'message', None) or getattr(e, 'detail', e)}") from None
        try:
            upload = next((v for v in form.values() if hasattr(v, "read")), None)
            if upload is None:
                raise ValueError("multipart form has no file part (send the video as field 'file')")
            size = 0
            while chunk := await upload.read(1 << 20):
                dest.write(chunk)
                size += len(chunk)
            return size
        finally:
            await form.close()
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        dest.write(chunk)
    return total


def create_app(
    predictor: Predictor,
    *,
    limits: Limits = DEFAULT_LIMITS,
    allow_hosts: tuple[str, ...] | list[str] = (),
    spool_dir: str | None = None,
) -> Starlette:
    svc = Service(predictor, limits, tuple(allow_hosts), spool_dir)

    async def index(request: Request) -> Response:
        return HTMLResponse(files("vid_assets.serve").joinpath("page.html").read_text())

    async def healthz(request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                **predictor.describe(),
                "active_streams": svc.active,
                "limits": limits.to_dict(),
                "allow_hosts": list(svc.allow_hosts),
                "counters": svc.counters,
                "batcher": predictor.batcher.stats.to_dict(),
            }
        )

    async def predict_upload(request: Request) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limits.max_upload_bytes:
            return _error(f"upload of {int(length)} bytes exceeds the {limits.max_upload_bytes} byte limit", 413)
        # the body is read before a stream slot is taken: slow or stalled uploads hold no slot
        client = request.client.host if request.client else ""
        if svc.bodies.get(client, 0) >= limits.max_bodies_per_client:
            svc.counters["rejected"] += 1
            return _error(f"too many uploads from {client} at once (limit {limits.max_bodies_per_client})", 429)
        svc.bodies[client] = svc.bodies.get(client, 0) + 1
        tmp = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed below; the file outlives the request handler)
            prefix="vid-assets-upload-", suffix=".video", dir=spool_dir, delete=False
        )
        path = Path(tmp.name)

        def cleanup() -> None:
            path.unlink(missing_ok=True)

        def refuse(message: str, status: int, headers: dict | None = None) -> JSONResponse:
            cleanup()
            return _error(message, status, headers)

        try:
            with tmp:
                size = await _spool_body(request, tmp, limits)
            if size == 0:
                raise ValueError("empty upload: send the video file as the request body")
            info = await anyio.to_thread.run_sync(probe, str(path))
            if info.width * info.height > limits.max_pixels:
                return refuse(f"frames of {info.width}x{info.height} exceed the {limits.max_pixels} pixel limit", 413)
            if math.isfinite(info.duration_s) and info.duration_s > limits.max_duration_s:
                return refuse(f"video is {info.duration_s:.1f} s long; the limit is {limits.max_duration_s:g} s", 413)
        except _TooLarge:
            return refuse(f"upload exceeds the {limits.max_upload_bytes} byte limit", 413)
        except _TooSlow as e:
            return refuse(str(e), 408, {"Connection": "close"})
        except VideoDecodeError as e:
            return refuse(f"not a readable video: {e.reason}", 422)
        except ValueError as e:
            return refuse(str(e), 400)
        except BaseException:
            cleanup()
            raise
        finally:
            svc.bodies[client] -= 1
            if not svc.bodies[client]:
                del svc.bodies[client]
        if (busy := svc.acquire()) is not None:
            cleanup()
            return busy
        cancel = threading.Event()
        events = predictor.events(
            str(path), info=info, cancel=cancel, embeddings=_flag(request, "embeddings"), limits=limits
        )
        return svc.sse(events, cancel, cleanup)

    async def predict_url(request: Request) -> Response:
        url = request.query_params.get("url")
        if not url:
            return _error("missing ?url= (or POST the video to /v1/predict)", 400)
        if (why := svc.host_allowed(url)) is not None:
            return _error(why, 403)
        if (busy := svc.acquire()) is not None:
            return busy
        info, source = None, url
        if not is_live(url):  # a file over HTTP: probe first so a bad URL is a 4xx, not a stream
            try:
                final = await svc.follow_redirects(url)
                source = await anyio.to_thread.run_sync(lambda: open_remote(final, allow_redirects=False))
                info = await anyio.to_thread.run_sync(lambda: probe(source, timeout_s=30))
                source.seek(0)
            except _Refused as e:
                return _cleanup_error(svc, None, str(e), 403)
            except (VideoDecodeError, OSError, httpx.HTTPError) as e:
                return _cleanup_error(svc, None, f"cannot read {url}: {getattr(e, 'reason', e)}", 422)
            except BaseException:
                svc.release()
                raise
            if info.width * info.height > limits.max_pixels:
                return _cleanup_error(
                    svc, None, f"frames of {info.width}x{info.height} exceed the {limits.max_pixels} pixel limit", 413
                )
            if math.isfinite(info.duration_s) and info.duration_s > limits.max_duration_s:
                return _cleanup_error(
                    svc, None, f"video is {info.duration_s:.1f} s long; the limit is {limits.max_duration_s:g} s", 413
                )
        cancel = threading.Event()
        events = predictor.events(
            source, info=info, cancel=cancel, embeddings=_flag(request, "embeddings"), limits=limits
        )
        return svc.sse(events, cancel, cleanup=getattr(source, "close", None))

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/healthz", healthz),
            Route("/v1/predict", predict_upload, methods=["POST"]),
            Route("/v1/predict", predict_url, methods=["GET"]),
            Route("/v1/predict/stream", LiveEndpoint(svc), methods=["POST"]),
        ],
        lifespan=_lifespan(predictor),
        exception_handlers={HTTPException: _http_error},  # JSON, like every other error
    )
    app.state.service = svc
    return app


def _cleanup_error(svc: Service, cleanup, message: str, status: int) -> JSONResponse:
    if cleanup is not None:
        cleanup()
    svc.release()
    return _error(message, status)


def _lifespan(predictor: Predictor):
    @asynccontextmanager
    async def lifespan(app):
        yield
        predictor.close()

    return lifespan


class LiveEndpoint:
    """``POST /v1/predict/stream``: decode the request body *while it is still arriving*.

    A raw ASGI endpoint because two things read ``receive`` at once in a plain Starlette response
    (the body reader and the SSE disconnect watcher): here one pump reads it, feeds body chunks to a
    :class:`BytePipe` that FFmpeg reads, and turns ``http.disconnect`` into a cancel for both.
    """

    def __init__(self, svc: Service) -> None:
        self.svc = svc

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        svc = self.svc
        request = Request(scope)
        if (busy := svc.acquire()) is not None:
            await busy(scope, receive, send)
            return
        pipe = BytePipe()
        cancel = threading.Event()
        disconnected = anyio.Event()
        limit = svc.limits.max_upload_bytes

        async def pump() -> None:
            total = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    break
                body = message.get("body", b"")
                total += len(body)
                if total > limit:  # stop reading; the decoder sees EOF and the stream ends cleanly
                    pipe.finish()
                elif body:
                    await anyio.to_thread.run_sync(pipe.write, body)
                if not message.get("more_body", False):
                    pipe.finish()
            cancel.set()
            pipe.close()
            disconnected.set()

        async def sse_receive():
            await disconnected.wait()
            return {"type": "http.disconnect"}

        open_options = dict(LIVE_OPEN)
        if fmt := request.query_params.get("format"):
            open_options["format"] = fmt
        events = svc.predictor.events(
            pipe,
            cancel=cancel,
            embeddings=_flag(request, "embeddings"),
            limits=svc.limits,
            open_options=open_options,
            request_id=uuid.uuid4().hex[:12],
        )
        response = svc.sse(events, cancel, cleanup=pipe.close)
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump)
            try:
                await response(scope, sse_receive, send)
            finally:
                pipe.close()  # unblocks a pump stuck writing to a pipe nobody reads
                tg.cancel_scope.cancel()


def serve(
    predictor: Predictor,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: Limits = DEFAULT_LIMITS,
    allow_hosts: tuple[str, ...] = (),
    log_level: str = "info",
) -> None:
    """Run the service with uvicorn (blocking)."""
    import uvicorn

    app = create_app(predictor, limits=limits, allow_hosts=allow_hosts, spool_dir=settings.spool_dir())
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
