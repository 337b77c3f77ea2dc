"""``POST /v1/predict/stream``: predictions over a live upload, decoded while it arrives."""

from __future__ import annotations

import threading
import uuid

import anyio
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from vid_assets.serve.pipe import BytePipe
from vid_assets.serve.service import Service, flag

LIVE_OPEN = {"options": {"analyzeduration": "1000000", "probesize": "1000000"}}  # start within ~1 s of input


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
            embeddings=flag(request, "embeddings"),
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
