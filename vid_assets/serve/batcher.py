"""Dynamic batching: one loaded model, many concurrent callers.

Every request's decode thread submits its clips here; a single worker thread owns the model and
runs a forward pass over whatever has queued up, waiting at most ``max_wait_s`` after the first
clip for others to join (up to ``max_clips`` per pass). Concurrent requests therefore share passes
on the device instead of taking turns, and a lone request pays at most ``max_wait_s`` of latency.
The pass itself is :func:`vid_assets.extractors.embed_clips`: the asset pipeline's code.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from vid_assets.extractors import Extractor, embed_clips


@dataclass
class ClipResult:
    """One clip's outputs: ``features`` float32 ``[crops, D]`` (``[1, D]`` after a crop mean),
    ``top_k`` of the crop-mean logits (empty for headless models)."""

    features: np.ndarray
    top_k: list[tuple[str, float]]
    batch_clips: int  # clips in the forward pass that computed it (all requests)
    batch_owners: int  # distinct requests in that pass
    computed_at: float  # time.time() when the pass finished


@dataclass
class BatcherStats:
    batches: int = 0
    clips: int = 0
    mixed_batches: int = 0  # passes holding clips of more than one request
    max_batch: int = 0
    busy_s: float = 0.0
    clips_by_owner: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "batches": self.batches,
            "clips": self.clips,
            "mixed_batches": self.mixed_batches,
            "max_batch": self.max_batch,
            "mean_batch": self.clips / self.batches if self.batches else 0.0,
            "busy_s": round(self.busy_s, 3),
        }


@dataclass
class _Item:
    pixels: np.ndarray  # uint8 [T, crops, S, S, 3]
    owner: str
    future: Future


class DynamicBatcher:
    def __init__(
        self,
        extractor: Extractor,
        *,
        crop_reduce: str = "none",
        max_clips: int | None = None,
        max_wait_s: float = 0.005,
        top_k: int = 5,
    ) -> None:
        self.extractor = extractor
        self.crop_reduce = crop_reduce
        self.max_clips = max_clips
        self.max_wait_s = max_wait_s
        self.k = top_k
        self.stats = BatcherStats()
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._closed = False
        self._worker = threading.Thread(target=self._run, name="vid-assets-batcher", daemon=True)
        self._worker.start()

    def capacity(self, pixels: np.ndarray) -> int:
        """Clips per pass: the extractor's image batch divided by images per clip (frames x crops)."""
        if self.max_clips:
            return self.max_clips
        per_clip = int(pixels.shape[0] * pixels.shape[1]) if self.extractor.input_kind == "frame" else pixels.shape[1]
        return max(1, self.extractor.batch_size // max(per_clip, 1))

    def submit(self, pixels: np.ndarray, owner: str = "") -> Future:
        """Queue one clip (uint8 ``[T, crops, S, S, 3]``); the future resolves to a :class:`ClipResult`.
        Cancelling the future before its pass starts drops the clip from the pass."""
        if self._closed:
            raise RuntimeError("batcher is closed")
        fut: Future = Future()
        self._queue.put(_Item(pixels, owner, fut))
        return fut

    def close(self) -> None:
        self._closed = True
        self._queue.put(None)
        self._worker.join(timeout=30)

    # -- worker ----------------------------------------------------------------------------------
    def _collect(self, first: _Item) -> list[_Item]:
        batch, cap = [first], self.capacity(first.pixels)
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < cap:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)  # keep the stop signal for the outer loop
                break
            batch.append(item)
        return [it for it in batch if it.future.set_running_or_notify_cancel()]

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = self._collect(first)
            if not batch:
                continue
            t0 = time.perf_counter()
            try:
                out = embed_clips(self.extractor, np.stack([it.pixels for it in batch]), crop_reduce=self.crop_reduce)
                tops = self._top_k(out.logits, len(batch))
            except BaseException as e:  # a bad pass fails its clips' requests, never the worker
                for it in batch:
                    it.future.set_exception(e)
                continue
            done = time.time()
            owners = {it.owner for it in batch}
            s = self.stats
            s.batches += 1
            s.clips += len(batch)
            s.mixed_batches += len(owners) > 1
            s.max_batch = max(s.max_batch, len(batch))
            s.busy_s += time.perf_counter() - t0
            for it in batch:
                s.clips_by_owner[it.owner] = s.clips_by_owner.get(it.owner, 0) + 1
            for i, it in enumerate(batch):
                it.future.set_result(ClipResult(out.features[i], tops[i], len(batch), len(owners), done))

    def _top_k(self, logits: np.ndarray | None, n: int) -> list[list[tuple[str, float]]]:
        if logits is None or self.extractor.labels is None or self.k <= 0:
            return [[] for _ in range(n)]
        return self.extractor.top_k(logits.mean(axis=1), self.k)  # one ranking per clip (crop mean)
