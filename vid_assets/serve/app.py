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

from contextlib import asynccontextmanager
from importlib.resources import files

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from vid_assets import settings
from vid_assets.serve.endpoints import UploadEndpoint, UrlEndpoint
from vid_assets.serve.live import LiveEndpoint
from vid_assets.serve.predict import DEFAULT_LIMITS, Limits, Predictor
from vid_assets.serve.service import Service, error_response


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

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/healthz", healthz),
            Route("/v1/predict", UploadEndpoint(svc).handle, methods=["POST"]),
            Route("/v1/predict", UrlEndpoint(svc).handle, methods=["GET"]),
            Route("/v1/predict/stream", LiveEndpoint(svc), methods=["POST"]),
        ],
        lifespan=_lifespan(predictor),
        exception_handlers={HTTPException: _http_error},  # JSON, like every other error
    )
    app.state.service = svc
    return app


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return error_response(str(exc.detail), exc.status_code, getattr(exc, "headers", None))


def _lifespan(predictor: Predictor):
    @asynccontextmanager
    async def lifespan(app):
        yield
        predictor.close()

    return lifespan


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
