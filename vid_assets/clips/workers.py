"""The two ways many decoders run beside the model: threads in this process, or worker processes
(a ``torch.utils.data.DataLoader``) handing batches over through reusable shared-memory slots."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import shutil
import threading
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from vid_assets.clips.batches import ClipBatch, Target, iter_video_batches
from vid_assets.clips.build import ClipSpec
from vid_assets.media.plan import SamplingPlan
from vid_assets.runtime.prefetch import prefetch as prefetch_items

log = logging.getLogger(__name__)


# -- thread backend -------------------------------------------------------------------------------
def threaded_feed(
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


def process_feed(
    sources: Sequence[str],
    plan: SamplingPlan,
    spec: ClipSpec,
    batch_clips: int,
    num_workers: int,
    pin: bool,
    prefetch: int,
    decoder_threads: int,
    device_convert: bool,
    also: Sequence[Target],
    shared_slots: bool = True,
) -> Iterator[ClipBatch]:
    """Decoder processes (a DataLoader, spawned), batches through shared slots when they fit."""
    ctx = torch.multiprocessing.get_context("spawn")

    def batch_bytes(t: Target) -> int:
        return t.batch_clips * t.spec.frames_per_clip * t.spec.num_crops * t.spec.crop_size**2 * 3

    # a slot for every batch a worker may have in flight (prefetch each), one being filled per extra
    # target (a worker fills one batch per target at once), plus the one being copied
    count = num_workers * (prefetch + len(also)) + 2
    nbytes = max(batch_bytes(t) for t in (Target(plan, spec, batch_clips), *also))
    slots = _make_slots(count, nbytes, ctx) if shared_slots else None
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


def _make_slots(count: int, nbytes: int, ctx) -> _Slots | None:
    """The slots are written once up front; where /dev/shm is small (64 MB in a default Docker
    container) that would crash with SIGBUS, so batches then travel the DataLoader's own way."""
    free = _shm_free_bytes()
    if free is None or count * nbytes <= free // 2:
        return _Slots(count, nbytes, ctx)
    log.warning(
        "shared memory too small for %d decoder slots of %.0f MB (%.0f MB free in /dev/shm): "
        "decoders hand batches over one by one instead (slower; raise --shm-size)",
        count,
        nbytes / 1e6,
        free / 1e6,
    )
    return None
