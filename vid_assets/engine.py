"""The one streaming engine: videos -> decode -> clips -> model -> one result per video.

Every door runs this: the Dagster assets (a backfill, a sensor run, ``dagster asset
materialize``), ``vid-assets extract`` and the benchmarks. Decoders run in parallel where the
host has cores for them (``clips.stream``), frames are converted on the accelerator where there
is one (``clips.device``), the next pass is queued before the host waits for the last one
(``iter_pipelined``), nothing is written between the stages: memory is bounded by the batches in
flight plus each unfinished video's feature rows (copied out of the passes), never frames.

Passes are cut from the stream of clips at a fixed size, across video boundaries: many short videos
fill a pass as well as one long one, and the same clips in the same order make the same passes, so a
video's features do not depend on where its clips came from (decoded now, or kept intermediates).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from vid_assets.clips import ClipSpec
from vid_assets.clips.device import to_device_clips
from vid_assets.clips.stream import ClipBatch, Target, iter_clip_batches
from vid_assets.extractors import Extractor, iter_pipelined, submit_clips
from vid_assets.extractors.labels import top_k
from vid_assets.fit import PipelineConfig
from vid_assets.runtime.memory import PeriodicTrim
from vid_assets.runtime.prefetch import put_unless


@dataclass
class VideoResult:
    """One video's features and what its decode did, or why it failed (``stage``, ``error``)."""

    index: int  # position in the engine's input
    features: np.ndarray | None = None  # float32 [clips, crops, D]
    top_labels: np.ndarray | None = None  # [clips, crops, k] (classifiers)
    top_scores: np.ndarray | None = None
    timestamps: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # float64 [clips, 2]
    frame_times: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # float64 [clips, T]
    segments: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))  # [clips], -1 outside segments
    summary: dict | None = None  # the decode's report (``clips.stream.decode_summary``)
    error: str | None = None
    stage: str | None = None  # where it failed: "decode" or "embed"
    seconds: float = 0.0  # the run's wall time between passes, shared out by this video's clips
    model_seconds: float = 0.0  # the model's own time on the passes (device time on CUDA), shared likewise

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def num_clips(self) -> int:
        return len(self.timestamps)


def default_feed(device: torch.device) -> dict:
    """How to decode here, as measured (benchmarks/RESULTS.md): on CUDA, decoder processes on all cores
    but two, handing YUV planes to the device; on the CPU, one decoder thread per four cores (at least
    one), FFmpeg single-threaded (its frame threads would take cores from the model's passes)."""
    cores = os.cpu_count() or 1
    if device.type == "cuda":
        return {"num_workers": max(1, cores - 2), "backend": "processes", "device_convert": True}
    return {"num_workers": max(1, cores // 4), "backend": "threads", "device_convert": False, "decoder_threads": 1}


def decode_feed(
    sources: Sequence[str],
    config: PipelineConfig,
    extractor: Extractor,
    also: Sequence[tuple[Extractor, PipelineConfig]] = (),
    **options,
) -> Iterator[ClipBatch]:
    """Clip batches decoded from ``sources`` for ``extractor`` (``options`` override ``default_feed``).

    ``also``: more ``(extractor, config)`` pairs fed by the same decode of each video (their plans
    may differ only in ``short_side``); their batches carry ``target`` 1, 2 ... (see :func:`run_many`)."""
    feed = {**default_feed(extractor.device), **options}
    return iter_clip_batches(
        sources,
        config.plan,
        config.clip,
        batch_clips=pass_clips(extractor, config.clip),
        pin_memory=any(e.device.type == "cuda" for e in (extractor, *(e for e, _ in also))),
        also=[Target(c.plan, c.clip, pass_clips(e, c.clip)) for e, c in also],
        **feed,
    )


def shares_decode(a: PipelineConfig, b: PipelineConfig) -> bool:
    """Whether one decode can feed both: the same plan but for the frames' short side."""
    return replace(a.plan, short_side=b.plan.short_side) == b.plan


_END = object()


def run_many(
    feed: Iterable[ClipBatch],
    models: Sequence[tuple[Extractor, PipelineConfig]],
    *,
    depth: int = 1,
    on_pass: Callable[[int], None] | None = None,
    queue_batches: int = 4,
) -> Iterator[tuple[int, VideoResult]]:
    """:func:`run` for several models over one feed (``decode_feed(..., also=...)``): each batch
    goes to the model its ``target`` names, every model runs in its own thread (passes release
    the GIL; on a GPU they interleave), and ``(target, result)`` pairs come as videos finish.
    At most ``queue_batches`` batches wait per model, so memory stays bounded when one model is
    slower than the decode: the decode waits for it."""
    if len(models) == 1:
        extractor, config = models[0]
        for result in run(feed, extractor, config, depth=depth, on_pass=on_pass):
            yield 0, result
        return
    inboxes = [queue.Queue(maxsize=queue_batches) for _ in models]
    results: queue.Queue = queue.Queue()
    stop = threading.Event()
    threads = [threading.Thread(target=_route, args=(feed, inboxes, results, stop), daemon=True, name="feed")]
    threads += [
        threading.Thread(target=_embed_inbox, args=(i, models[i], inboxes[i], results, depth, on_pass), daemon=True)
        for i in range(len(models))
    ]
    for t in threads:
        t.start()
    running = len(models)
    try:
        while running:
            i, item = results.get()
            if i < 0:
                raise item
            if item is _END:
                running -= 1
                continue
            yield i, item
    finally:
        stop.set()
        for q in inboxes:  # unblock a worker waiting for input
            with contextlib.suppress(queue.Full):
                q.put_nowait(_END)
        for t in threads:
            t.join(timeout=5)


def _route(feed: Iterable[ClipBatch], inboxes: list[queue.Queue], results: queue.Queue, stop) -> None:
    """``run_many``'s feeder thread: each batch to the inbox of the model its ``target`` names."""
    try:
        for b in feed:
            if not put_unless(inboxes[b.target], b, stop):
                return
    except BaseException as e:  # noqa: BLE001 - re-raised by the consumer
        results.put((-1, e))
    finally:
        for q in inboxes:
            put_unless(q, _END, stop)


def _embed_inbox(i: int, model, inbox: queue.Queue, results: queue.Queue, depth: int, on_pass) -> None:
    """``run_many``'s thread for model ``i``: :func:`run` over its inbox, results tagged ``i``."""
    extractor, config = model
    try:
        for result in run(iter(inbox.get, _END), extractor, config, depth=depth, on_pass=on_pass):
            results.put((i, result))
    except BaseException as e:  # noqa: BLE001
        results.put((-1, e))
    finally:
        results.put((i, _END))


def pass_clips(extractor: Extractor, spec: ClipSpec) -> int:
    """Clips per forward pass: the extractor's images per pass over the images in a clip."""
    return max(1, extractor.batch_size // (spec.frames_per_clip * spec.num_crops))


class _Video:
    """A video's rows while its clips are in flight."""

    def __init__(self, index: int) -> None:
        self.result = VideoResult(index)
        self.rows: list[tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]] = []
        self.stamps: list[np.ndarray] = []
        self.times: list[np.ndarray] = []
        self.segments: list[np.ndarray] = []
        self.in_flight = 0
        self.ended = False

    def finish(self) -> VideoResult:
        r = self.result
        if r.ok and self.stamps:
            r.timestamps = np.concatenate(self.stamps)
            r.frame_times = np.concatenate(self.times)
            r.segments = np.concatenate(self.segments)
        if r.ok and self.rows:
            r.features = np.concatenate([f for f, _ in self.rows])
            if self.rows[0][1] is not None:
                r.top_labels = np.concatenate([t[0] for _, t in self.rows])
                r.top_scores = np.concatenate([t[1] for _, t in self.rows])
        self.rows = []
        return r


class _Failed:
    """A pass whose launch raised: its ``result()`` raises the same error, so the videos in the
    pass fail at the ``embed`` stage like a pass that failed on the device."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def result(self):
        raise self.error


def run(
    feed: Iterable[ClipBatch],
    extractor: Extractor,
    config: PipelineConfig,
    *,
    depth: int = 1,
    on_pass: Callable[[int], None] | None = None,
) -> Iterator[VideoResult]:
    """Embed every clip ``feed`` yields; a video's :class:`VideoResult` comes as soon as its last
    clip is done (or its decode failed), in finishing order.

    ``depth`` passes stay queued on the device while the host prepares the next one (on the CPU they
    run in a thread beside this one: ``iter_pipelined``); ``on_pass(clips)`` after each (progress bars).
    """
    book, trim, cpu = _Books(extractor, config), PeriodicTrim(), extractor.device.type == "cpu"
    for parts, pending in iter_pipelined(book.passes(feed), book.submit, depth=depth, background=cpu):
        total = book.settle(parts, pending)
        trim()  # what many videos' decoders and writes leave fragmented (runtime/memory.py)
        if on_pass is not None:
            on_pass(total)
        yield from book.finished()
    yield from book.finished()
    yield from book.unfinished()


class _Books:
    """One run's bookkeeping: the videos with clips in flight, passes of exactly ``cap`` clips cut
    across videos, and each pass's rows handed back to the videos they came from."""

    def __init__(self, extractor: Extractor, config: PipelineConfig) -> None:
        self.extractor, self.config = extractor, config
        self.cap = pass_clips(extractor, config.clip)
        self.videos: dict[int, _Video] = {}
        self.ready: list[int] = []  # ended videos with no clip in flight
        self.last_done = time.perf_counter()

    def _receive(self, b: ClipBatch) -> torch.Tensor | None:
        v = self.videos.setdefault(b.video, _Video(b.video))
        if b.error is not None:
            v.result.error, v.result.stage = b.error, "decode"
        elif len(b.timestamps):
            v.stamps.append(b.timestamps)
            v.times.append(b.frame_times)
            v.segments.append(b.segments)
        if b.summary is not None:
            v.result.summary = b.summary
        v.ended = b.last
        if b.error is not None or not len(b.timestamps):
            if v.ended and v.in_flight == 0:
                self.ready.append(b.video)
            return None
        v.in_flight += len(b.timestamps)
        if b.color is None:
            return b.pixels
        return to_device_clips(b, self.config.clip, self.config.plan.short_side, self.extractor.device)

    def passes(self, feed: Iterable[ClipBatch]) -> Iterator[list[tuple[int, torch.Tensor]]]:
        """Runs of exactly ``cap`` clips (the last may be short), each part tagged with its video."""
        parts: list[tuple[int, torch.Tensor]] = []
        held = 0
        for b in feed:
            pixels = self._receive(b)
            while pixels is not None and len(pixels):
                take = pixels[: self.cap - held]
                parts.append((b.video, take))
                held += len(take)
                pixels = pixels[len(take) :]
                if held == self.cap:
                    yield parts
                    parts, held = [], 0
        if parts:
            yield parts

    def submit(self, parts: list[tuple[int, torch.Tensor]]):
        try:
            tensors = [t for _, t in parts]
            if len(tensors) == 1:
                batch = tensors[0]
            elif tensors[0].device.type == "cpu":  # keep a CUDA upload's source page-locked
                shape = (sum(map(len, tensors)), *tensors[0].shape[1:])
                batch = torch.empty(shape, dtype=torch.uint8, pin_memory=tensors[0].is_pinned())
                torch.cat(tensors, out=batch)
            else:
                batch = torch.cat(tensors)
            return submit_clips(self.extractor, batch, crop_reduce=self.config.clip.crop_reduce)
        except Exception as e:  # noqa: BLE001 - raised at launch (a CPU forward, a CUDA OOM): these videos fail
            return _Failed(e)

    def settle(self, parts: list[tuple[int, torch.Tensor]], pending) -> int:
        """A pass's rows to their videos (or its error to them); how many clips it held."""
        try:
            out = pending.result()
            busy = pending.busy_s()
        except Exception as e:  # noqa: BLE001 - the model failed these videos, not the run
            out, error, busy = None, f"{type(e).__name__}: {e}", 0.0
        top = top_k(out.logits, self.config.top_k) if out is not None and out.logits is not None else None
        now = time.perf_counter()
        total = sum(len(t) for _, t in parts)
        share, self.last_done = (now - self.last_done) / max(1, total), now
        offset = 0
        for i, t in parts:
            v, sl, offset = self.videos[i], slice(offset, offset + len(t)), offset + len(t)
            v.in_flight -= len(t)
            if out is None:
                v.result.error, v.result.stage = v.result.error or error, v.result.stage or "embed"
            elif v.result.ok:  # copies: a view keeps its pass's array, and a heap fragment with it (memory.py)
                top_rows = None if top is None else (top[0][sl].copy(), top[1][sl].copy())
                v.rows.append((out.features[sl].copy(), top_rows))
                v.result.seconds += share * len(t)
                v.result.model_seconds += busy * len(t) / max(1, total)
            if v.ended and v.in_flight == 0 and i not in self.ready:
                self.ready.append(i)
        return total

    def finished(self) -> Iterator[VideoResult]:
        while self.ready:
            yield self.videos.pop(self.ready.pop(0)).finish()

    def unfinished(self) -> Iterator[VideoResult]:
        """A feed that stopped early (cancelled) leaves unfinished videos: they fail at decode."""
        for i in sorted(self.videos):
            v = self.videos.pop(i)
            v.result.error, v.result.stage = v.result.error or "the feed ended before the video did", "decode"
            yield v.finish()


def extract(
    sources: Sequence[str], extractor: Extractor, config: PipelineConfig, **feed_options
) -> Iterator[VideoResult]:
    """Decode ``sources`` and embed them: :func:`run` over :func:`decode_feed`."""
    return run(decode_feed(sources, config, extractor, **feed_options), extractor, config)
