"""One video's decode turned into clip batches, for one or several targets.

Batches never mix videos, so every batch carries one video's clip metadata. A video that fails
to decode yields one ``ClipBatch`` per target with ``error`` set, instead of raising.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from vid_assets.clips.build import ClipSpec, iter_clips
from vid_assets.media.contact import ContactSheet
from vid_assets.media.decode import DecodeStats, VideoDecodeError, YuvInfo, iter_frames, probe, resize_rgb
from vid_assets.media.plan import SamplingPlan
from vid_assets.runtime.prefetch import prefetch as prefetch_items


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


class _Frames:
    """One video's decoded frames, each target's frames pulled in step from one decode, and what
    the decode saw (stats, a contact sheet, the frame shape, the YUV colour facts)."""

    def __init__(self, source: str, targets: list[Target], threads: int, device_convert: bool, read_ahead: int):
        self.source, self.targets, self.threads = source, targets, threads
        self.device_convert, self.read_ahead = device_convert, read_ahead
        self.shared = len(targets) > 1
        self.stats, self.sheet, self.shape = DecodeStats(), ContactSheet(), []
        self.color: YuvInfo | None = None
        self._source = iter(self._decoded())
        self._queues = [collections.deque() for _ in targets]
        self.taken = [0] * len(targets)

    def _decoded(self):
        plan, kw = self.targets[0].plan, {"threads": self.threads, "stats": self.stats}
        if self.device_convert:
            yield from iter_frames(self.source, plan, convert="yuv420p", **kw)
        elif self.read_ahead <= 0 and not self.shared:
            yield from iter_frames(self.source, plan, convert=True, **kw)
        else:
            frames = iter_frames(self.source, plan, convert="rgb-source", **kw)
            yield from prefetch_items(frames, depth=self.read_ahead) if self.read_ahead > 0 else frames

    def _sized(self, f, t: Target):
        """The frame as target ``t`` takes it: resized to its short side (once per size)."""
        if f.color is not None or (not self.shared and self.read_ahead <= 0):
            return f
        return replace(f, image=resize_rgb(f.image, t.plan.short_side, f.rotation), rotation=0)

    def _note(self, f) -> None:
        self.color = self.color or f.color
        # the contact sheet of a YUV stream is its luma plane (the top two thirds of the planes)
        image = f.image if f.color is None else f.image[: f.image.shape[0] * 2 // 3]
        self.shape = list(image.shape)
        self.sheet.add(image, f.pts_s)

    def frames_for(self, i: int):
        """Target ``i``'s frames: a new frame is decoded when the target has taken every earlier one."""
        while True:
            if not self._queues[i]:
                f = next(self._source, None)
                if f is None:
                    return
                for q in self._queues:
                    q.append(f)
            f = self._sized(self._queues[i].popleft(), self.targets[i])
            self.taken[i] += 1
            if i == 0:
                self._note(f)
            yield f

    def summary(self) -> dict:
        return decode_summary(probe(self.source), self.stats, self.stats.kept, self.shape, self.sheet)


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
    for t in targets[1:]:
        if replace(t.plan, short_side=plan.short_side) != plan:
            raise ValueError(f"targets sharing a decode must share the plan but its short side: {t.plan} vs {plan}")
    frames = _Frames(source, targets, decoder_threads, device_convert, read_ahead)
    batchers = [_Batcher(v, i, t.batch_clips, pin, alloc) for i, t in enumerate(targets)]
    crop = not device_convert
    try:
        streams = {i: iter_clips(frames.frames_for(i), t.spec, t.plan.step_s, crop=crop) for i, t in enumerate(targets)}
        while streams:
            i = min(streams, key=frames.taken.__getitem__)
            clip = next(streams[i], None)
            if clip is None:
                del streams[i]
                continue
            batch = batchers[i].held()
            if batch is not None:
                yield batch
            batchers[i].add(clip, frames.color)
        done = frames.summary()
        for b in batchers:
            yield b.finish(frames.color, done)
    except VideoDecodeError as e:
        for i, b in enumerate(batchers):
            empty = torch.empty(0, dtype=torch.uint8)
            yield ClipBatch(v, b.first, empty, np.zeros((0, 2)), True, error=str(e), target=i)
