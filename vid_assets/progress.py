"""Progress hooks: anything with ``reset(total_frames)`` and ``update(current_frame)``.

That is seed 001's interface (its ``TQDMProgressBar`` and ``StreamingProgressBar`` work pasted as
they are): ``reset`` once with the number of frames the job will sample (all videos; predicted
from each video's duration and the plan), then ``update`` once per sampled frame processed, with
the running count, so a bar that adds 1 per call and one that reads ``current_frame`` both end
at the total. :class:`FrameCounter` drives a hook from the engine's passes; :class:`WebProgress`
is a hook that POSTs JSON to a URL, at most once per ``interval_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

log = logging.getLogger(__name__)


class ProgressHook(Protocol):
    def reset(self, total_frames: int) -> None: ...

    def update(self, current_frame: int) -> None: ...


class FrameCounter:
    """Sampled frames done, told to ``hook`` one frame at a time. ``advance(n)`` after each pass;
    ``finish()`` at the end brings the count to the total (frames of failed videos and a plan's
    estimate that was a few frames off count as done), never past it before."""

    def __init__(self, hook: ProgressHook | None, total_frames: int) -> None:
        self.hook, self.total, self.current = hook, max(0, int(total_frames)), 0
        self._lock = threading.Lock()  # passes of several models may report from their threads
        if hook is not None:
            hook.reset(self.total)

    def advance(self, frames: int) -> None:
        with self._lock:
            stop = min(self.current + frames, self.total - 1)  # the last frame waits for finish()
            while self.hook is not None and self.current < stop:
                self.current += 1
                self.hook.update(self.current)
            self.current = max(self.current, stop)

    def finish(self) -> None:
        with self._lock:
            while self.hook is not None and self.current < self.total:
                self.current += 1
                self.hook.update(self.current)


class WebProgress:
    """POSTs ``{"total_frames": N}`` on reset and ``{"current_frame": i, "total_frames": N}`` on
    updates, at most once per ``interval_s`` (and always the last one), to ``url``. A server that
    is down or slow never stops the work: failures are logged once and skipped."""

    def __init__(self, url: str, interval_s: float = 1.0, timeout_s: float = 5.0) -> None:
        import httpx

        self.url, self.interval_s = url, interval_s
        self.client = httpx.Client(timeout=timeout_s)
        self.total, self._sent_at, self._warned = 0, 0.0, False

    def _post(self, body: dict) -> None:
        try:
            self.client.post(self.url, json=body)
        except Exception as e:  # noqa: BLE001 - progress is best effort
            if not self._warned:
                log.warning("progress callback %s failed (%s); the work goes on", self.url, e)
                self._warned = True

    def reset(self, total_frames: int) -> None:
        self.total = int(total_frames)
        self._sent_at = time.monotonic()
        self._post({"total_frames": self.total})

    def update(self, current_frame: int) -> None:
        now = time.monotonic()
        if current_frame >= self.total or now - self._sent_at >= self.interval_s:
            self._sent_at = now
            self._post({"current_frame": int(current_frame), "total_frames": self.total})
