"""Decode -> clips for many videos in parallel, as uint8 batches ready for the device.

``iter_clip_batches`` shards the video list over ``num_workers`` decoder *threads* or worker
*processes* (``backend="auto"``: processes on CUDA hosts, threads elsewhere, as measured). Threads
write their clips straight into a (pinned, for CUDA) batch tensor: pixels are copied once and never
leave the process, which wins on few cores. Processes (a ``torch.utils.data.DataLoader``, which
owns their start, sharding and failures) escape the GIL on many-core GPU hosts; they write each
batch into one of a few shared-memory slots that are reused (``_Slots``), so no batch pays for a
fresh mapping, and the main process copies it out (page-locked for CUDA). See
benchmarks/RESULTS.md.

Batches never mix videos, so every batch carries one video's clip metadata. Errors are not raised
across the boundary: a video that fails to decode yields one ``ClipBatch`` with ``error`` set, and
the other videos go on.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import os
import queue
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from vid_assets.clips.build import ClipSpec, iter_clips
from vid_assets.media.contact import ContactSheet
from vid_assets.media.decode import DecodeStats, VideoDecodeError, YuvInfo, iter_frames, probe, resize_rgb
from vid_assets.media.plan import SamplingPlan
from vid_assets.runtime.prefetch import prefetch as prefetch_items

log = logging.getLogger(__name__)


@dataclass
class ClipBatch:
    video: int  # index into the sources list
    first_clip: int
    pixels: torch.Tensor  # uint8 [n, T, crops, S, S, 3]; with device_convert: YUV planes [n, T, H*3/2, W]
    timestamps: np.ndarray  # float64 [n, 2]
    last: bool  # the video's final batch
    error: str | None = None
    color: YuvInfo | None = None  # set when ``pixels`` are YUV planes (see ``clips.device``)
    slot: tuple[int, tuple[int, ...]] | None = None  # process backend: pixels wait in this shared slot
    crop_keys: np.ndarray | None = None  # int [n]: what each clip's random crop is drawn from (Clip.crop_key)
    frame_times: np.ndarray | None = None  # float64 [n, T]: pts of each clip's frames
    segments: np.ndarray | None = None  # int32 [n]: each clip's segment (-1 outside segments plans)
    summary: dict | None = None  # on the video's last batch: what decoding it did (``decode_summary``)
    target: int = 0  # whose batch, when one decode serves several targets (``Target``)


def decode_summary(info, stats: DecodeStats, frames: int, frame_shape: list[int], sheet: ContactSheet) -> dict:
    """What one video's decode did, as the ``decoded_frames`` asset reports it per video."""
    return {
        "info": info.to_dict(),
        "decode": stats.to_dict(),
        "frames": frames,
        "frame_shape": frame_shape,
        "contact_sheet_jpeg": sheet.jpeg(),
    }


@dataclass(frozen=True)
class Target:
    """One consumer of a video's decode: its plan (frame size), its clips, its batch size. Several
    targets whose plans differ only in ``short_side`` share one decode (feature sets that share a
    plan: ``ClipBatch.target`` says whose batch it is)."""

    plan: SamplingPlan
    spec: ClipSpec
    batch_clips: int


class _Batcher:
    """One target's clips of one video, cut into batches and written once into each batch tensor
    (from ``alloc(shape)`` when it gives one, e.g. a shared-memory slot). A full batch is held until
    the next clip shows the video goes on, so the video's final batch is the one marked ``last``."""

    def __init__(self, v: int, target: int, batch_clips: int, pin: bool, alloc) -> None:
        self.v, self.target, self.batch_clips, self.pin, self.alloc = v, target, batch_clips, pin, alloc
        self.first, self.buf, self.full = 0, None, None
        self.stamps: list[tuple[float, float]] = []
        self.keys: list[int] = []
        self.times: list[np.ndarray] = []
        self.segs: list[int] = []

    def held(self) -> ClipBatch | None:
        """The full batch, once a next clip shows it is not the video's last (send it before
        ``add`` asks for a new buffer: a shared-memory slot frees only when a batch is sent)."""
        out, self.full = self.full, None
        return out

    def add(self, clip, color: YuvInfo | None) -> None:
        if self.buf is None:
            shape = (self.batch_clips, *clip.pixels.shape)
            self.buf = self.alloc(shape) if self.alloc is not None else None
            if self.buf is None:
                self.buf = torch.empty(shape, dtype=torch.uint8, pin_memory=self.pin)
        self.buf.numpy()[len(self.stamps)] = clip.pixels
        self.stamps.append((clip.start_s, clip.end_s))
        self.keys.append(clip.crop_key)
        self.times.append(clip.frame_times)
        self.segs.append(clip.segment)
        if len(self.stamps) == self.batch_clips:
            self.full = self._batch(False, color)

    def finish(self, color: YuvInfo | None, summary: dict) -> ClipBatch:
        """The video's last batch: the held full one, or what is left (empty for a clipless video)."""
        last = self.full if self.full is not None else self._batch(True, color)
        last.last, last.summary = True, summary
        return last

    def _batch(self, last: bool, color: YuvInfo | None) -> ClipBatch:
        n = len(self.stamps)
        b = ClipBatch(
            self.v,
            self.first,
            self.buf[:n] if self.buf is not None else torch.empty(0, dtype=torch.uint8),
            np.asarray(self.stamps, dtype=np.float64).reshape(-1, 2),
            last,
            color=color,
            crop_keys=np.asarray(self.keys),
            frame_times=np.asarray(self.times, dtype=np.float64).reshape(n, -1),
            segments=np.asarray(self.segs, dtype=np.int32),
            target=self.target,
        )
        self.first += n
        self.buf, self.stamps, self.keys, self.times, self.segs = None, [], [], [], []
        return b


def iter_video_batches(
    source: str,
    v: int,
    plan: SamplingPlan,
    spec: ClipSpec,
    batch_clips: int,
    pin: bool = False,
    decoder_threads: int = 0,
    device_convert: bool = False,
    alloc: Callable[[tuple[int, ...]], torch.Tensor | None] | None = None,
    read_ahead: int = 0,
    also: Sequence[Target] = (),
) -> Iterator[ClipBatch]:
    """One video's clips in batches of ``batch_clips``, each written once into its batch tensor
    (from ``alloc(shape)`` when it gives one, e.g. a shared-memory slot).

    ``device_convert``: decode to YUV planes only; colour conversion, resize and crops happen on the
    device (``clips.device.to_device_clips``), which takes the per-frame swscale work off the CPU.

    ``read_ahead`` > 0: a helper thread decodes (and converts to RGB) at most that many frames
    ahead while this thread resizes and assembles the previous ones, so the two halves of the host
    work overlap on two cores (both release the GIL). It pays only where a core is really free
    (see ``iter_clip_batches`` for when it is the default).

    ``also``: more :class:`Target` s served by the same decode (their plans may differ from
    ``plan`` only in ``short_side``); their batches carry ``target`` 1, 2 ... Frames are converted
    to RGB once at the source size and resized per target, and each target's clips are pulled in
    step with the others (the one that has taken the fewest frames goes next), so at most a clip's
    frames wait for the slowest target.
    """
    targets = [Target(plan, spec, batch_clips), *also]
    stats, sheet, shape = DecodeStats(), ContactSheet(), [0]
    color: list[YuvInfo | None] = [None]
    shared = len(targets) > 1
    for t in targets[1:]:
        if replace(t.plan, short_side=plan.short_side) != plan:
            raise ValueError(f"targets sharing a decode must share the plan but its short side: {t.plan} vs {plan}")

    def decoded():
        if device_convert:
            yield from iter_frames(source, plan, threads=decoder_threads, convert="yuv420p", stats=stats)
            return
        if read_ahead <= 0 and not shared:
            yield from iter_frames(source, plan, threads=decoder_threads, convert=True, stats=stats)
            return
        frames = iter_frames(source, plan, threads=decoder_threads, convert="rgb-source", stats=stats)
        yield from prefetch_items(frames, depth=read_ahead) if read_ahead > 0 else frames

    def sized(f, t: Target):
        """The frame as target ``t`` takes it: resized to its short side (once per size)."""
        if f.color is not None or (not shared and read_ahead <= 0):
            return f
        return replace(f, image=resize_rgb(f.image, t.plan.short_side, f.rotation), rotation=0)

    def noted(frames):
        for f in frames:
            color[0] = color[0] or f.color
            # the contact sheet of a YUV stream is its luma plane (the top two thirds of the planes)
            image = f.image if f.color is None else f.image[: f.image.shape[0] * 2 // 3]
            shape[0] = list(image.shape)
            sheet.add(image, f.pts_s)
            yield f

    def summary() -> dict:
        return decode_summary(probe(source), stats, stats.kept, shape[0] or [], sheet)

    batchers = [_Batcher(v, i, t.batch_clips, pin, alloc) for i, t in enumerate(targets)]
    try:
        if not shared:
            clips = iter_clips(
                noted(sized(f, targets[0]) for f in decoded()), spec, plan.step_s, crop=not device_convert
            )
            for clip in clips:
                batch = batchers[0].held()
                if batch is not None:
                    yield batch
                batchers[0].add(clip, color[0])
            yield batchers[0].finish(color[0], summary())
            return
        source_frames = iter(decoded())
        queues: list[collections.deque] = [collections.deque() for _ in targets]
        taken = [0] * len(targets)

        def frames_for(i: int):
            first = i == 0
            while True:
                if not queues[i]:
                    f = next(source_frames, None)
                    if f is None:
                        return
                    for q in queues:
                        q.append(f)
                f = queues[i].popleft()
                taken[i] += 1
                f = sized(f, targets[i])
                yield from noted([f]) if first else (f,)

        streams = {
            i: iter_clips(frames_for(i), t.spec, t.plan.step_s, crop=not device_convert) for i, t in enumerate(targets)
        }
        while streams:
            i = min(streams, key=taken.__getitem__)
            clip = next(streams[i], None)
            if clip is None:
                del streams[i]
                continue
            batch = batchers[i].held()
            if batch is not None:
                yield batch
            batchers[i].add(clip, color[0])
        done = summary()
        for b in batchers:
            yield b.finish(color[0], done)
    except VideoDecodeError as e:
        for i in range(len(targets)):
            first = batchers[i].first
            yield ClipBatch(v, first, torch.empty(0, dtype=torch.uint8), np.zeros((0, 2)), True, error=str(e), target=i)


# -- thread backend -------------------------------------------------------------------------------
def _threaded(
    sources: Sequence[str],
    plan: SamplingPlan,
    spec: ClipSpec,
    batch_clips: int,
    workers: int,
    pin: bool,
    depth: int,
    decoder_threads: int,
    device_convert: bool = False,
    also: Sequence[Target] = (),
) -> Iterator[ClipBatch]:
    q: queue.Queue = queue.Queue(maxsize=max(2, depth * workers))
    stop = threading.Event()
    done = object()

    def run(wid: int) -> None:
        try:
            for v in range(wid, len(sources), workers):
                batches = iter_video_batches(
                    sources[v], v, plan, spec, batch_clips, pin, decoder_threads, device_convert, also=also
                )
                for batch in batches:
                    if stop.is_set():
                        return
                    q.put(batch)
        except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
            q.put(e)
        finally:
            q.put(done)

    threads = [threading.Thread(target=run, args=(i,), daemon=True, name=f"decode-{i}") for i in range(workers)]
    for t in threads:
        t.start()
    finished = 0
    try:
        while finished < workers:
            item = q.get()
            if item is done:
                finished += 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        stop.set()
        for t in threads:
            while t.is_alive():
                with contextlib.suppress(queue.Empty):
                    q.get_nowait()
                t.join(timeout=0.01)


# -- process backend ------------------------------------------------------------------------------
def _shm_free_bytes() -> int | None:
    """Free bytes where torch puts shared memory on Linux (None where there is no /dev/shm)."""
    try:
        return shutil.disk_usage("/dev/shm").free
    except OSError:
        return None


class _Slots:
    """Batch buffers in shared memory, made once and reused by every batch.

    Handing each batch over as a new shared-memory tensor (the DataLoader's way) costs a fresh
    mapping per batch: every page is faulted in by the worker that writes it and again by the main
    process that reads it, ~0.1 ms per 224 px frame on each side on the 2-core VM (RESULTS.md). A
    worker instead writes its batch straight into a free slot, sends only the slot number, and the
    main process copies the pixels out (into page-locked memory for CUDA) and frees the slot.
    Batches larger than a slot (YUV planes of big frames) still travel the DataLoader's way.
    """

    def __init__(self, count: int, nbytes: int, ctx) -> None:
        self.nbytes = nbytes
        self.buffers = [torch.empty(nbytes, dtype=torch.uint8).share_memory_() for _ in range(count)]
        self.free = ctx.Queue()
        for i in range(count):
            self.free.put(i)
        self.held: dict[int, int] = {}  # in a worker: data_ptr of a handed-out buffer -> its slot

    def acquire(self, shape: tuple[int, ...]) -> torch.Tensor | None:
        """A worker's batch buffer in a free slot (waits for one); None if the batch is too big."""
        n = math.prod(shape)
        if n > self.nbytes:
            return None
        i = self.free.get()
        buf = self.buffers[i][:n].view(shape)
        self.held[buf.data_ptr()] = i
        return buf

    def send(self, b: ClipBatch) -> ClipBatch:
        """In a worker: a batch whose pixels sit in a slot travels as the slot number only."""
        slot = self.held.pop(b.pixels.data_ptr(), None) if b.pixels.numel() else None
        if slot is not None:
            b.slot, b.pixels = (slot, tuple(b.pixels.shape)), torch.empty(0, dtype=torch.uint8)
        return b

    def release_held(self) -> None:
        """In a worker: free the slots of batches a decode error abandoned half-filled."""
        for slot in self.held.values():
            self.free.put(slot)
        self.held.clear()

    def copy_out(self, slot: tuple[int, tuple[int, ...]], pin: bool) -> torch.Tensor:
        """In the main process: the pixels of a slot (page-locked for CUDA); the slot is freed."""
        i, shape = slot
        out = torch.empty(shape, dtype=torch.uint8, pin_memory=pin)
        out.copy_(self.buffers[i][: math.prod(shape)].view(shape))
        self.free.put(i)
        return out


class _ClipDataset(IterableDataset):
    def __init__(
        self,
        sources: Sequence[str],
        plan: SamplingPlan,
        spec: ClipSpec,
        batch_clips: int,
        decoder_threads: int,
        device_convert: bool = False,
        slots: _Slots | None = None,
        also: Sequence[Target] = (),
    ) -> None:
        self.sources, self.plan, self.spec, self.batch_clips = list(sources), plan, spec, batch_clips
        self.decoder_threads, self.device_convert, self.slots = decoder_threads, device_convert, slots
        self.also = tuple(also)

    def __iter__(self) -> Iterator[ClipBatch]:
        info = get_worker_info()
        wid, nworkers = (info.id, info.num_workers) if info else (0, 1)
        if info is not None:
            torch.set_num_threads(1)  # decoding workers must not fight the model for cores
            with contextlib.suppress(OSError):
                os.nice(5)
        for v in range(wid, len(self.sources), nworkers):
            batches = iter_video_batches(
                self.sources[v],
                v,
                self.plan,
                self.spec,
                self.batch_clips,
                decoder_threads=self.decoder_threads,
                device_convert=self.device_convert,
                alloc=self.slots.acquire if self.slots is not None else None,
                also=self.also,
            )
            if self.slots is None:
                yield from batches
                continue
            for b in batches:
                yield self.slots.send(b)
            self.slots.release_held()


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

    ``also``: more :class:`Target` s fed by the same decode of each video (``iter_video_batches``);
    their batches carry ``target`` 1, 2 ...

    ``device_convert=True`` yields YUV planes (``ClipBatch.color`` set): pass each batch through
    ``clips.device.to_device_clips`` on the model's device to get the usual uint8 clip tensor.

    ``decoder_threads`` is FFmpeg's thread count per decoder; by default the cores are shared out
    (cores // workers, at least 1) so parallel decoders do not oversubscribe the machine; inline,
    FFmpeg's choice on CUDA hosts and 1 elsewhere (a CPU model needs the other cores).
    ``backend="auto"`` takes processes on CUDA hosts and threads elsewhere, as measured (RESULTS.md):
    on the 16-core H100 host 14 processes fed 6.2k img/s vs 3.0k for 14 threads; on the 2-core VM
    2 threads fed 3.8k img/s vs 1.3k for 2 processes. ``shared_slots=False`` makes processes hand
    batches over the DataLoader's own way (see ``_Slots``), for comparison.

    ``read_ahead`` (inline only): a helper thread decodes up to that many frames ahead while the
    caller's thread resizes and assembles (``iter_video_batches``), so inline decoding uses a
    second core while the caller waits for a batch. Default (None): 2 on CUDA hosts, where the
    model leaves the cores to the decoder, else 0: next to a CPU model the second core is not idle
    then (torch's OpenMP worker spins for milliseconds after each pass) and the helper made the
    2-core VM's pipeline ~3 % slower, while the feed alone ran 0.33 -> 0.22 ms per frame.
    """
    cuda = torch.cuda.is_available()
    pin = pin_memory and cuda
    if decoder_threads is None:
        # inline next to a CPU model, FFmpeg's frame threads would decode on in the background
        # during its passes (2-core VM: pipeline_vs_bare 0.875 with them, 0.891 with one thread)
        decoder_threads = (0 if cuda else 1) if num_workers == 0 else max(1, (os.cpu_count() or 1) // num_workers)
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
        yield from _threaded(
            sources, plan, spec, batch_clips, num_workers, pin, prefetch, decoder_threads, device_convert, also
        )
        return
    if backend != "processes":
        raise ValueError(f"backend must be 'auto', 'threads' or 'processes', got {backend!r}")
    ctx = torch.multiprocessing.get_context("spawn")

    def batch_bytes(t: Target) -> int:
        return t.batch_clips * t.spec.frames_per_clip * t.spec.num_crops * t.spec.crop_size**2 * 3

    # a slot for every batch a worker may have in flight (prefetch each), one being filled per extra
    # target (a worker fills one batch per target at once), plus the one being copied
    count = num_workers * (prefetch + len(also)) + 2
    nbytes = max(batch_bytes(t) for t in (Target(plan, spec, batch_clips), *also))
    slots = None
    if shared_slots:
        # the slots are written once up front; where /dev/shm is small (64 MB in a default Docker
        # container) that would crash with SIGBUS, so batches then travel the DataLoader's own way
        free = _shm_free_bytes()
        if free is None or count * nbytes <= free // 2:
            slots = _Slots(count, nbytes, ctx)
        else:
            log.warning(
                "shared memory too small for %d decoder slots of %.0f MB (%.0f MB free in /dev/shm): "
                "decoders hand batches over one by one instead (slower; raise --shm-size)",
                count,
                nbytes / 1e6,
                free / 1e6,
            )
    loader = DataLoader(
        _ClipDataset(sources, plan, spec, batch_clips, decoder_threads, device_convert, slots, also),
        batch_size=None,
        num_workers=num_workers,
        prefetch_factor=prefetch,
        multiprocessing_context=ctx,
    )

    def received() -> Iterator[ClipBatch]:
        for b in loader:
            if b.slot is not None:
                b.pixels, b.slot = slots.copy_out(b.slot, pin), None
            elif pin and b.pixels.numel():
                b.pixels = b.pixels.pin_memory()
            yield b

    # copying out of the slots runs in a thread, beside the consumer (torch's copy releases the GIL)
    yield from prefetch_items(received(), depth=prefetch)
