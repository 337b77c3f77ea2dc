"""Queued passes: features whose device work is enqueued, and the helpers that keep a device
busy (a clip batch's passes with their frame/crop means and head queued behind them; the next
batch submitted before the last one's result is asked for)."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import torch

if TYPE_CHECKING:
    from vid_assets.extractors.base import Extractor

T = TypeVar("T")
P = TypeVar("P")


@dataclass
class ClipFeatures:
    """Per-clip outputs: ``features`` float32 ``[B, crops, D]``; ``logits`` ``[B, crops, C]`` or None."""

    features: np.ndarray
    logits: np.ndarray | None = None


class PendingFeatures:
    """Features whose device passes are queued: :meth:`result` waits for them as float32 ``[N, D]``
    (and :meth:`logits` for the head's output, when the passes computed it).

    On CUDA the copies back go into page-locked host memory without blocking, and an event marks
    their end, so a caller can queue the next batch before this one is done (``iter_pipelined``).
    Elsewhere the work has already finished when this is made.
    """

    def __init__(self, host: torch.Tensor, event: torch.cuda.Event | None = None, logits: torch.Tensor | None = None):
        self._host, self._event, self._logits = host, event, logits

    @classmethod
    def of(
        cls,
        parts: list[torch.Tensor],
        dim: int,
        device: torch.device,
        finish: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]] | None = None,
    ) -> PendingFeatures:
        """``finish``: queued on the device after the passes, ``features -> (features, logits)``
        (a clip's frame mean and its head: see :func:`submit_clips`)."""
        if not parts:
            feats = torch.zeros((0, dim), dtype=torch.float32, device=device)
        else:
            feats = torch.cat(parts) if len(parts) > 1 else parts[0]
        logits = None
        if finish is not None:
            feats, logits = finish(feats)
        if device.type != "cuda":
            return cls(feats.cpu(), logits=None if logits is None else logits.cpu())
        host = _to_pinned(feats)
        host_logits = None if logits is None else _to_pinned(logits)
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream(feats.device))  # the copies' stream, on any GPU
        return cls(host, event, host_logits)

    def _wait(self) -> None:
        if self._event is not None:
            self._event.synchronize()
            self._event = None

    def result(self) -> np.ndarray:
        self._wait()
        return self._host.numpy()

    def logits(self) -> np.ndarray | None:
        self._wait()
        return None if self._logits is None else self._logits.numpy()


def _to_pinned(t: torch.Tensor) -> torch.Tensor:
    """A page-locked host copy of device tensor ``t``, queued without blocking."""
    host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    return host.copy_(t, non_blocking=True)


class PendingClipFeatures:
    """What :func:`submit_clips` queued; :meth:`result` waits and returns :class:`ClipFeatures`;
    :meth:`busy_s` (after it) how long the model worked on it: on CUDA the device time between
    events recorded around the queued work (so the decode the device waited for is not counted),
    elsewhere the host time the work took. A compile on the first pass counts in its time."""

    def __init__(self, pending: PendingFeatures, timer: tuple | float) -> None:
        self.pending, self._timer = pending, timer

    def result(self) -> ClipFeatures:
        return ClipFeatures(features=self.pending.result(), logits=self.pending.logits())

    def busy_s(self) -> float:
        if isinstance(self._timer, float):
            return self._timer
        start, end = self._timer
        end.synchronize()  # recorded just after the pass's own end event: done when its result is
        return start.elapsed_time(end) / 1000.0


def submit_clips(
    extractor: Extractor, clip_pixels: np.ndarray | torch.Tensor, crop_reduce: str = "none"
) -> PendingClipFeatures:
    """Queue :func:`embed_clips`' device work and return at once (on CPU the work is done here).

    ``.result()`` gives the :class:`ClipFeatures`. Queuing batch *i + 1* before asking for batch
    *i*'s result keeps an accelerator busy while the host prepares batches (``iter_pipelined``).
    The frame mean, crop mean and head run on the device with the passes: computing the logits
    after the result came back moved the features to the device again with a blocking copy, which
    waited for batch *i + 1*'s passes and left the device idle while the host queued *i + 2*.
    """
    b, t, c = clip_pixels.shape[:3]
    frames = extractor.input_kind == "frame"

    def finish(feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if frames and extractor.per_frame:  # [b, crops, T, *shape]: each frame's output kept
            feats = feats.reshape(b, t, c, *extractor.output_shape).transpose(1, 2)
            if crop_reduce == "mean":
                feats = feats.mean(dim=1, keepdim=True)
            return feats.contiguous(), None
        feats = feats.reshape(b, t, c, -1).mean(dim=1) if frames else feats.reshape(b, c, -1)
        if crop_reduce == "mean":
            feats = feats.mean(dim=1, keepdim=True)
        return feats, extractor.head_logits(feats)

    cuda = extractor.device.type == "cuda"
    t0, start = time.perf_counter(), torch.cuda.Event(enable_timing=True) if cuda else None
    if start is not None:
        start.record(torch.cuda.current_stream(extractor.device))  # the model's GPU, whichever is current
    if frames:
        pending = extractor.submit_frames(clip_pixels.reshape(b * t * c, *clip_pixels.shape[3:]), finish)
    else:
        per_crop = clip_pixels.transpose(1, 2) if isinstance(clip_pixels, torch.Tensor) else clip_pixels.swapaxes(1, 2)
        pending = extractor.submit_video_clips(per_crop.reshape(b * c, t, *clip_pixels.shape[3:]), finish)
    if start is None:
        return PendingClipFeatures(pending, time.perf_counter() - t0)
    end = torch.cuda.Event(enable_timing=True)
    end.record(torch.cuda.current_stream(extractor.device))
    return PendingClipFeatures(pending, (start, end))


def embed_clips(
    extractor: Extractor, clip_pixels: np.ndarray | torch.Tensor, crop_reduce: str = "none"
) -> ClipFeatures:
    """uint8 ``[B, T, crops, S, S, 3]`` -> per-clip features ``[B, crops, D]`` (``[B, 1, D]`` for mean;
    ``[B, crops, T, *feature_shape]`` for a ``per_frame`` extractor such as a VAE).

    Frame models embed every frame of every crop in one batched pass and average over the clip's
    frames (temporal mean pooling); clip models see each crop's ``T`` frames at once. Logits are the
    head applied to the final features (for a linear head, identical to averaging logits).
    """
    return submit_clips(extractor, clip_pixels, crop_reduce).result()


def iter_pipelined(
    items: Iterable[T], submit: Callable[[T], P], depth: int = 1, background: bool = False
) -> Iterator[tuple[T, P]]:
    """``(item, submit(item))`` pairs, yielded ``depth`` submissions late.

    With ``submit`` = :func:`submit_clips`, batch *i + depth* is already queued on the device when
    the caller waits for batch *i*'s ``.result()``: host work (receiving, converting, storing
    results) overlaps device compute instead of alternating with it.

    ``background``: ``submit`` runs in a thread of its own, one item after another, and what it
    returns answers once it is done. For the CPU, where a pass is computed before ``submit``
    returns: the caller's work on result *i* (storing a video, reporting it) overlaps pass *i + 1*
    instead of leaving the model's cores to the decoder alone (2-core VM, session 29: EfficientNet-
    Lite0's engine 13 % faster, ONNX Runtime and PyTorch alike). At most ``depth + 1`` items wait.
    """
    if not background:
        yield from _pipelined(items, submit, depth)
        return
    passes = ThreadPoolExecutor(1, thread_name_prefix="model-passes")
    try:
        yield from _pipelined(items, lambda item: _Later(passes.submit(submit, item)), depth)
    finally:  # also when the caller stops early: the pass under way ends, the queued ones are dropped
        passes.shutdown(wait=True, cancel_futures=True)


def _pipelined(items: Iterable[T], submit: Callable[[T], P], depth: int) -> Iterator[tuple[T, P]]:
    window: collections.deque[tuple[T, P]] = collections.deque()
    for item in items:
        window.append((item, submit(item)))
        if len(window) > depth:
            yield window.popleft()
    while window:
        yield window.popleft()


class _Later:
    """What a background ``submit`` returns, once it has: attributes are looked up on it, so
    ``.result()`` first waits for the submission (and raises what it raised)."""

    def __init__(self, future: Future) -> None:
        self._future = future

    def __getattr__(self, name: str):
        return getattr(self._future.result(), name)
