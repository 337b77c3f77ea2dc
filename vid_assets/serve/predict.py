"""Per-clip predictions as a stream of events, for a file, a URL or a live byte stream.

This is the asset pipeline's own chain, ``iter_frames`` -> ``iter_clips`` -> ``embed_clips`` (the
last through the shared :class:`~vid_assets.serve.batcher.DynamicBatcher`), run without
intermediate storage. It is plain Python (no web framework): the ASGI app in ``serve/app.py``
only turns these events into Server-Sent Events.

Pipelining: a producer thread decodes and builds clips and submits each to the batcher as soon as
it exists, at most ``inflight`` clips ahead of the consumer; the consumer yields clip *i* while
clip *i+1* is being decoded and computed. Memory per request is bounded by ``inflight`` clips.
"""

from __future__ import annotations

import math
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass
from typing import Any

from vid_assets.clips import ClipSpec, count_clips, iter_clips
from vid_assets.fit import PipelineConfig, config_for
from vid_assets.media import SamplingPlan, iter_frames
from vid_assets.media.decode import DecodeStats, VideoDecodeError, VideoInfo
from vid_assets.runtime.prefetch import put_unless
from vid_assets.serve.batcher import DynamicBatcher

Event = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Limits:
    """What one request may cost. Defaults suit a single-GPU box serving short clips."""

    max_upload_bytes: int = 1 << 30  # 1 GiB
    max_duration_s: float = 1800.0  # uploads: refused up front; live/URL: stopped when reached
    max_streams: int = 8  # concurrent predictions; more get 429
    request_budget_s: float = 600.0  # wall time per request
    # an upload's body is read before it takes a stream slot, and must keep coming: no byte for
    # ``body_idle_s`` (or, after ``body_grace_s``, less than ``min_body_rate`` bytes/s on
    # average) ends it with 408; one client address may send ``max_bodies_per_client`` at once
    body_idle_s: float = 10.0
    body_grace_s: float = 5.0
    min_body_rate: int = 32 * 1024
    max_bodies_per_client: int = 4
    # frames larger than this (from the stream header, before any decoding) are refused with 413;
    # default 8,847,360 = 4096x2160 (DCI 4K)
    max_pixels: int = 4096 * 2160

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_LIMITS = Limits()


class _Cancelled(Exception):
    """The caller set ``cancel`` (client gone): stop without an event."""


class PredictionError(Exception):
    """A request-level failure with an HTTP-ish status (used before streaming starts)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def expected_clips(plan: SamplingPlan, spec: ClipSpec, info: VideoInfo | None) -> int | None:
    """How many clips a video of ``info`` should give (for progress bars); None if unknown."""
    if info is None or not math.isfinite(info.duration_s or math.nan):
        return None
    n = plan.expected_frames(info.duration_s, 0, info.avg_fps or 30.0)
    return None if n is None else count_clips(n, spec.frames_per_clip, spec.stride, plan.samples_per_segment)


class Predictor:
    """One loaded extractor + one pipeline config, shared by every request of a server."""

    def __init__(
        self,
        extractor,
        config: PipelineConfig | None = None,
        *,
        max_wait_s: float = 0.005,
        max_clips: int | None = None,
        inflight: int = 8,
        decode_threads: int = 1,
    ) -> None:
        self.extractor = extractor
        self.config = config or config_for(extractor)  # 2 fps, clips and frames fitted to the model
        self.inflight = max(1, inflight)
        self.decode_threads = decode_threads
        self.batcher = DynamicBatcher(
            extractor,
            crop_reduce=self.config.clip.crop_reduce,
            max_clips=max_clips,
            max_wait_s=max_wait_s,
            top_k=self.config.top_k,
        )

    def close(self) -> None:
        self.batcher.close()

    def describe(self) -> dict:
        return {
            "extractor": self.extractor.id,
            "device": str(self.extractor.device),
            "dim": self.extractor.dim,
            "plan": self.config.plan.to_dict(),
            "clip": self.config.clip.to_dict(),
            "top_k": self.config.top_k,
        }

    def events(
        self,
        source: Any,
        *,
        info: VideoInfo | None = None,
        request_id: str | None = None,
        cancel: threading.Event | None = None,
        embeddings: bool = False,
        limits: Limits = DEFAULT_LIMITS,
        open_options: dict | None = None,
    ) -> Iterator[Event]:
        """``start``, one ``clip`` per clip in order, then ``done`` (or ``error``: the stream stops).

        Closing the generator (client gone) or setting ``cancel`` stops decoding and drops the
        request's queued clips from the batcher.
        """
        req = _Request(self, source, request_id or uuid.uuid4().hex[:12], cancel, limits, open_options)
        duration = None if info is None or not math.isfinite(info.duration_s) else info.duration_s
        plan, spec = self.config.plan, self.config.clip
        expected = expected_clips(plan, spec, info)
        yield "start", {"request_id": req.rid, "duration_s": duration, "clips_expected": expected, **self.describe()}
        req.start()
        try:
            for clip, res in req.results():
                yield "clip", req.clip_event(clip, res, embeddings)
            yield "done", req.done_event()
        except _Cancelled:
            return
        except (VideoDecodeError, PredictionError) as e:
            status = e.status if isinstance(e, PredictionError) else 422
            message = e.reason if isinstance(e, VideoDecodeError) else str(e)  # no server paths
            yield "error", {"request_id": req.rid, "message": message, "status": status, "clips_sent": req.sent}
        except Exception as e:  # an unexpected failure still ends the stream with a reason
            message = f"{type(e).__name__}: {e}"
            yield "error", {"request_id": req.rid, "message": message, "status": 500, "clips_sent": req.sent}
        finally:
            req.stop()


class _Request:
    """One request's decode thread, its clips queued in the batcher (at most ``inflight``), and
    what it has sent; ``cancel`` (or ``stop``) ends both sides."""

    def __init__(self, predictor: Predictor, source, rid: str, cancel, limits: Limits, open_options) -> None:
        self.predictor, self.source, self.rid, self.limits = predictor, source, rid, limits
        self.open_options = open_options
        self.cancel = cancel or threading.Event()
        self.started, self.t_wall = time.monotonic(), time.time()
        self.stats = DecodeStats()
        self.q: queue.Queue = queue.Queue(maxsize=predictor.inflight)
        self.end = object()
        self.pending: deque = deque()
        self.sent, self.first_s = 0, None
        self.producer = threading.Thread(target=self._produce, name=f"vid-assets-decode-{rid}", daemon=True)

    def start(self) -> None:
        self.producer.start()

    def _put(self, item) -> bool:
        return put_unless(self.q, item, self.cancel)

    def _produce(self) -> None:
        p, limits = self.predictor, self.limits
        plan, clips = p.config.plan, None
        try:
            frames = iter_frames(
                self.source,
                plan,
                time_budget_s=limits.request_budget_s,
                threads=p.decode_threads,
                stats=self.stats,
                open_options=self.open_options,
            )
            clips = iter_clips(frames, p.config.clip, plan.step_s)
            for clip in clips:
                if self.cancel.is_set():
                    return
                if clip.start_s - plan.start_s >= limits.max_duration_s:
                    raise PredictionError(f"video longer than the {limits.max_duration_s:g} s limit", 413)
                if not self._put((clip, p.batcher.submit(clip.pixels, owner=self.rid))):
                    return
        except BaseException as e:
            self._put(e)
        finally:
            if clips is not None:
                clips.close()  # closes the decoder and its container
            self._put(self.end)

    def _wait(self, get, empty):
        """``get(timeout)`` in short slices: notices ``cancel`` and the request's time budget."""
        budget = self.limits.request_budget_s
        while True:
            if self.cancel.is_set():
                raise _Cancelled
            left = budget - (time.monotonic() - self.started)
            if left <= 0:
                raise PredictionError(f"time budget of {budget:g} s exceeded", 504)
            try:
                return get(min(left, 0.1))
            except empty:
                continue

    def results(self):
        """``(clip, its batcher result)`` in order, as they are computed."""
        while True:
            item = self._wait(lambda t: self.q.get(timeout=t), queue.Empty)
            if item is self.end:
                return
            if isinstance(item, BaseException):
                raise item
            clip, fut = item
            self.pending.append(fut)
            res = self._wait(lambda t, fut=fut: fut.result(timeout=t), FutureTimeout)
            self.pending.popleft()
            if self.first_s is None:
                self.first_s = time.monotonic() - self.started
            yield clip, res
            self.sent += 1

    def clip_event(self, clip, res, embeddings: bool) -> dict:
        event = {
            "index": clip.index,
            "start_s": round(float(clip.start_s), 6),
            "end_s": round(float(clip.end_s), 6),
            "frame_times": [round(float(t), 6) for t in clip.frame_times],
            **({"segment": clip.segment} if clip.segment >= 0 else {}),  # segments plans
            "top_k": [{"label": label, "score": round(score, 6)} for label, score in res.top_k],
            "batch_clips": res.batch_clips,
            "batch_requests": res.batch_owners,
            "computed_at": res.computed_at,
        }
        if embeddings:
            event["embedding"] = res.features.tolist()
        return event

    def done_event(self) -> dict:
        seconds = time.monotonic() - self.started
        return {
            "request_id": self.rid,
            "clips": self.sent,
            "seconds": round(seconds, 4),
            "clips_per_s": round(self.sent / seconds, 3) if seconds > 0 else None,
            "time_to_first_clip_s": None if self.first_s is None else round(self.first_s, 4),
            "started_at": self.t_wall,
            "decode": self.stats.to_dict(),
        }

    def stop(self) -> None:
        self.cancel.set()
        for fut in self.pending:
            fut.cancel()
        self.producer.join(timeout=10)  # it sees ``cancel`` within one clip (puts time out every 0.1 s)
        while True:  # drop the clips it had queued: cancelled before their pass, never computed
            try:
                item = self.q.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, tuple):
                item[1].cancel()
