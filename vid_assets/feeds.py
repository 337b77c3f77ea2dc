"""The engine's feed: which decoders a model gets, decided before or after the model loads.

``decode_feed`` picks the decoders for the host and the model's device (``default_feed``, as
measured) and sizes the batches to the model's passes; ``decode_ahead`` starts them while the model
is still loading. ``vid_assets.engine`` re-exports these: callers use ``engine.decode_feed``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import NamedTuple

import torch

from vid_assets.clips import ClipSpec
from vid_assets.clips.stream import ClipBatch, Target, iter_clip_batches
from vid_assets.extractors import Extractor
from vid_assets.fit import PipelineConfig
from vid_assets.runtime.prefetch import HeadStart


def default_feed(device: torch.device) -> dict:
    """How to decode on this host, as measured (benchmarks/RESULTS.md): on CUDA, decoder processes
    on all cores but two, handing YUV planes to the device; on a small CPU host, inline in the
    model's process (2-core VM: 0.93 of the bare model's rate); more cores, a few decoder threads."""
    cores = os.cpu_count() or 1
    if device.type == "cuda":
        return {"num_workers": max(1, cores - 2), "backend": "processes", "device_convert": True}
    return {"num_workers": 0 if cores <= 4 else cores // 4, "backend": "threads", "device_convert": False}


class ModelSlot(NamedTuple):
    """What a feed needs of its model, known before the model loads (:func:`decode_ahead`)."""

    device: torch.device  # its type decides the feed: ``default_feed``, pinned batches
    batch_size: int  # images per pass; 0 (probed when it loads): batches of 32, cut to passes in ``run``


def decode_feed(
    sources: Sequence[str],
    config: PipelineConfig,
    extractor: Extractor | ModelSlot,
    also: Sequence[tuple[Extractor | ModelSlot, PipelineConfig]] = (),
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


def decode_ahead(feed: Iterable[ClipBatch], max_bytes: int = 256 << 20) -> HeadStart[ClipBatch]:
    """``feed`` decoding from now on a helper thread, up to ``max_bytes`` of pixels, until ``run``
    takes it: the decoders start while the model loads (a ``tv:resnet50`` run on the 2-core VM:
    RESULTS.md, session 26). Use it as a ``with`` block around the load and the run: leaving it
    releases the decoders, however the run ended."""
    return HeadStart(feed, max_bytes, size=lambda b: b.pixels.nbytes)


def shares_decode(a: PipelineConfig, b: PipelineConfig) -> bool:
    """Whether one decode can feed both: the same plan but for the frames' short side."""
    return replace(a.plan, short_side=b.plan.short_side) == b.plan


def pass_clips(extractor: Extractor | ModelSlot, spec: ClipSpec) -> int:
    """Clips per forward pass: the extractor's images per pass over the images in a clip."""
    return max(1, (extractor.batch_size or 32) // (spec.frames_per_clip * spec.num_crops))
