"""Decode -> clips for many videos in parallel, as uint8 batches ready for the device.

``iter_clip_batches`` shards the video list over ``num_workers`` decoder *threads* or worker
*processes* (``backend="auto"``: processes on CUDA hosts, threads elsewhere, as measured). Threads
write their clips straight into a (pinned, for CUDA) batch tensor: pixels are copied once and never
leave the process, which wins on few cores. Processes (a ``torch.utils.data.DataLoader``, which
owns their start, sharding and failures) escape the GIL on many-core GPU hosts; they write each
batch into one of a few shared-memory slots that are reused (``_Slots``), so no batch pays for a
fresh mapping, and the main process copies it out (page-locked for CUDA). See
benchmarks/RESULTS.md.

Defaults, as measured (RESULTS.md):

- ``backend="auto"`` takes processes on CUDA hosts and threads elsewhere: on the 16-core H100 host
  14 processes fed 6.2k img/s vs 3.0k for 14 threads; on the 2-core VM 2 threads fed 3.8k img/s
  vs 1.3k for 2 processes.
- ``decoder_threads``: the cores shared out (cores // workers, at least 1) so parallel decoders do
  not oversubscribe the machine; inline, FFmpeg's choice on CUDA hosts and 1 elsewhere.
- ``read_ahead`` (inline): 2 on CUDA hosts, where the model leaves the cores to the decoder, else
  0: next to a CPU model the second core is not idle (torch's OpenMP worker spins for
  milliseconds after each pass) and the helper made the 2-core VM's pipeline ~3 % slower, while
  the feed alone ran 0.33 -> 0.22 ms per frame.

Batches never mix videos, so every batch carries one video's clip metadata. Errors are not raised
across the boundary: a video that fails to decode yields one ``ClipBatch`` with ``error`` set, and
the other videos go on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import torch

from vid_assets.clips.batches import ClipBatch, Target, decode_summary, iter_video_batches
from vid_assets.clips.build import ClipSpec
from vid_assets.clips.workers import process_feed, threaded_feed
from vid_assets.media.plan import SamplingPlan

__all__ = ["ClipBatch", "Target", "decode_summary", "iter_clip_batches", "iter_video_batches"]


def iter_clip_batches(
    sources: Sequence[str],
    plan: SamplingPlan,
    spec: ClipSpec,
    *,
    batch_clips: int = 32,
    num_workers: int = 2,
    backend: str = "auto",
    pin_memory: bool = False,
    prefetch: int = 2,
    decoder_threads: int | None = None,
    device_convert: bool = False,
    shared_slots: bool = True,
    read_ahead: int | None = None,
    also: Sequence[Target] = (),
) -> Iterator[ClipBatch]:
    """Clip batches from ``sources``; ``num_workers`` decoders (0 = decode inline, in order).
    ``also``: more :class:`Target` s fed by the same decode (their batches: ``target`` 1, 2 ...).

    ``device_convert=True`` yields YUV planes (``ClipBatch.color`` set): pass each batch through
    ``clips.device.to_device_clips`` on the model's device to get the usual uint8 clip tensor.

    ``decoder_threads``: FFmpeg's threads per decoder (default: see the module docstring).
    ``shared_slots=False`` makes processes hand batches over the DataLoader's own way (see
    ``clips.workers._Slots``), for comparison. ``read_ahead`` (inline only): a helper thread
    decodes up to that many frames ahead while the caller's thread resizes and assembles.
    """
    cuda = torch.cuda.is_available()
    pin = pin_memory and cuda
    if decoder_threads is None:
        decoder_threads = _default_decoder_threads(num_workers, cuda)
    if num_workers == 0:
        ahead = (2 if cuda else 0) if read_ahead is None else read_ahead
        for v, src in enumerate(sources):
            yield from iter_video_batches(
                src, v, plan, spec, batch_clips, pin, decoder_threads, device_convert, read_ahead=ahead, also=also
            )
        return
    if backend == "auto":
        backend = "processes" if cuda else "threads"
    if backend == "threads":
        yield from threaded_feed(
            sources, plan, spec, batch_clips, num_workers, pin, prefetch, decoder_threads, device_convert, also
        )
        return
    if backend != "processes":
        raise ValueError(f"backend must be 'auto', 'threads' or 'processes', got {backend!r}")
    yield from process_feed(
        sources,
        plan,
        spec,
        batch_clips,
        num_workers,
        pin,
        prefetch,
        decoder_threads,
        device_convert,
        also,
        shared_slots,
    )


def _default_decoder_threads(num_workers: int, cuda: bool) -> int:
    """FFmpeg threads per decoder: the cores shared out between parallel decoders; inline next to
    a CPU model one thread, since FFmpeg's frame threads would decode on in the background during
    its passes (2-core VM: pipeline_vs_bare 0.875 with them, 0.891 with one thread)."""
    if num_workers == 0:
        return 0 if cuda else 1
    return max(1, (os.cpu_count() or 1) // num_workers)
