"""``POST /v1/predict`` (a whole uploaded video) and ``GET /v1/predict?url=`` (a pulled one).

Both refuse what they can before any work, as plain HTTP errors: a body too big, too slow or not
a video, frames too large, a video too long, a host off the allowlist, no free stream slot.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import anyio
import httpx
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from vid_assets.media import probe
from vid_assets.media.decode import VideoDecodeError
from vid_assets.media.opening import is_live, open_remote
from vid_assets.serve.predict import Limits
from vid_assets.serve.service import Refused, Service, TooLarge, TooSlow, error_response, flag, media_refusal


class UploadEndpoint:
    """``POST /v1/predict``: the body (raw or the file part of a multipart form) is spooled to a
    temporary file before a stream slot is taken, so slow or stalled uploads hold no slot."""

    def __init__(self, svc: Service) -> None:
        self.svc, self.limits = svc, svc.limits

    async def handle(self, request: Request) -> Response:
        svc, limits = self.svc, self.limits
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limits.max_upload_bytes:
            return error_response(
                f"upload of {int(length)} bytes exceeds the {limits.max_upload_bytes} byte limit", 413
            )
        client = request.client.host if request.client else ""
        if svc.bodies.get(client, 0) >= limits.max_bodies_per_client:
            svc.counters["rejected"] += 1
            return error_response(f"too many uploads from {client} at once (limit {limits.max_bodies_per_client})", 429)
        svc.bodies[client] = svc.bodies.get(client, 0) + 1
        tmp = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed below; the file outlives the request handler)
            prefix="vid-assets-upload-", suffix=".video", dir=svc.spool_dir, delete=False
        )
        path = Path(tmp.name)
        try:
            refused, info = await self._receive(request, tmp, path)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        finally:
            svc.bodies[client] -= 1
            if not svc.bodies[client]:
                del svc.bodies[client]
        if refused is None:
            refused = svc.acquire()
        if refused is not None:
            path.unlink(missing_ok=True)
            return refused
        cancel = threading.Event()
        events = svc.predictor.events(
            str(path), info=info, cancel=cancel, embeddings=flag(request, "embeddings"), limits=limits
        )
        return svc.sse(events, cancel, lambda: path.unlink(missing_ok=True))

    async def _receive(self, request: Request, tmp, path: Path) -> tuple[JSONResponse | None, object]:
        """Spool and probe the upload: ``(refusal, None)`` or ``(None, its VideoInfo)``."""
        limits = self.limits
        try:
            with tmp:
                size = await _spool_body(request, tmp, limits)
            if size == 0:
                raise ValueError("empty upload: send the video file as the request body")
            info = await anyio.to_thread.run_sync(probe, str(path))
        except TooLarge:
            return error_response(f"upload exceeds the {limits.max_upload_bytes} byte limit", 413), None
        except TooSlow as e:
            return error_response(str(e), 408, {"Connection": "close"}), None
        except VideoDecodeError as e:
            return error_response(f"not a readable video: {e.reason}", 422), None
        except ValueError as e:
            return error_response(str(e), 400), None
        if (why := media_refusal(info, limits)) is not None:
            return error_response(why, 413), None
        return None, info


class UrlEndpoint:
    """``GET /v1/predict?url=``: the server pulls an allowlisted URL (redirects checked too); a file
    over HTTP is probed first, so a bad URL is a 4xx, not a stream."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc

    async def handle(self, request: Request) -> Response:
        svc = self.svc
        url = request.query_params.get("url")
        if not url:
            return error_response("missing ?url= (or POST the video to /v1/predict)", 400)
        if (why := svc.host_allowed(url)) is not None:
            return error_response(why, 403)
        if (busy := svc.acquire()) is not None:
            return busy
        info, source = None, url
        if not is_live(url):
            try:
                source, info = await self._open(url)
            except Refused as e:
                return self._refuse(str(e), 403)
            except (VideoDecodeError, OSError, httpx.HTTPError) as e:
                return self._refuse(f"cannot read {url}: {getattr(e, 'reason', e)}", 422)
            except BaseException:
                svc.release()
                raise
            if (why := media_refusal(info, svc.limits)) is not None:
                return self._refuse(why, 413)
        cancel = threading.Event()
        events = svc.predictor.events(
            source, info=info, cancel=cancel, embeddings=flag(request, "embeddings"), limits=svc.limits
        )
        return svc.sse(events, cancel, cleanup=getattr(source, "close", None))

    async def _open(self, url: str):
        final = await self.svc.follow_redirects(url)
        source = await anyio.to_thread.run_sync(lambda: open_remote(final, allow_redirects=False))
        info = await anyio.to_thread.run_sync(lambda: probe(source, timeout_s=30))
        source.seek(0)
        return source, info

    def _refuse(self, message: str, status: int) -> JSONResponse:
        self.svc.release()
        return error_response(message, status)


def _guarded(request: Request, limits: Limits) -> Request:
    """The request with a ``receive`` that enforces the body limits: size, idle time, rate."""
    receive, started, total = request.receive, anyio.current_time(), 0

    async def guarded_receive():
        nonlocal total
        try:
            with anyio.fail_after(limits.body_idle_s):
                message = await receive()
        except TimeoutError:
            raise TooSlow(f"no upload bytes for {limits.body_idle_s:g} s") from None
        total += len(message.get("body", b""))
        if total > limits.max_upload_bytes:
            raise TooLarge
        elapsed = anyio.current_time() - started
        if message.get("more_body") and elapsed > limits.body_grace_s and total / elapsed < limits.min_body_rate:
            raise TooSlow(f"upload slower than {limits.min_body_rate} bytes/s")
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
