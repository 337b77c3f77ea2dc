"""Clip assembly and crops.

A clip is ``frames_per_clip`` consecutive *sampled* frames, a new clip starting every ``stride``
sampled frames. Clip pixels stay uint8 ``[T, crops, S, S, 3]``: 4x smaller than float32, and the
float conversion and normalisation belong on the accelerator (see ``extractors``).

Crops (``ClipSpec.crop``), all ``crop_size`` squares taken from frames whose short side is the
sampling plan's ``short_side``:

- ``center``: one centre crop.
- ``five``: four corners + centre (the classic evaluation five-crop), one feature row per crop.
- ``ten``: the five crops and their horizontal mirrors.
- ``random``: one crop whose position is drawn once per clip from ``(seed, clip index)`` and applied
  to every frame of the clip (temporal consistency, reproducible across runs and machines); with
  a segments plan, once per segment from ``(seed, segment index)``, shared by the segment's clips.

Segments (a ``segments`` sampling plan tags each frame with its segment): clips never cross a
segment boundary, since consecutive segments may lie far apart (``max_segments`` spreads them over
the video). Each segment is cut into clips on its own, with its own tail; with
``frames_per_clip = frames_per_segment`` a clip is exactly one segment.

``crop_reduce="mean"`` asks the extractor step to average features over crops (one row per clip).

Tail rule (documented in the README): a final clip with fewer than ``frames_per_clip`` frames is
kept and padded by repeating its last frame, so every video with at least one decodable frame
yields at least one clip and every second of video is covered.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from itertools import groupby
from typing import TypeVar

import numpy as np

from vid_assets.media.decode import DecodedFrame

T = TypeVar("T")
CROP_MODES = {"center": 1, "five": 5, "ten": 10, "random": 1}
CROP_REDUCE = ("none", "mean")


@dataclass(frozen=True)
class ClipSpec:
    frames_per_clip: int = 2
    stride: int = 2
    crop_size: int = 224
    crop: str = "center"
    crop_reduce: str = "none"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.frames_per_clip < 1 or self.stride < 1:
            raise ValueError("frames_per_clip and stride must be >= 1")
        if self.crop_size < 16:
            raise ValueError(f"crop_size must be >= 16, got {self.crop_size}")
        if self.crop not in CROP_MODES:
            raise ValueError(f"unsupported crop mode {self.crop!r} (supported: {', '.join(CROP_MODES)})")
        if self.crop_reduce not in CROP_REDUCE:
            raise ValueError(f"crop_reduce must be one of {CROP_REDUCE}, got {self.crop_reduce!r}")

    @property
    def num_crops(self) -> int:
        return CROP_MODES[self.crop]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Clip:
    index: int
    start_s: float
    end_s: float
    frame_times: np.ndarray  # float64 [T] (pts of each frame, padded frames repeat the last pts)
    pixels: np.ndarray  # uint8 [T, crops, S, S, 3]
    segment: int = -1  # the plan's segment holding its frames (segments mode), else -1

    @property
    def crop_key(self) -> int:
        """What a random crop is drawn from (with the seed): its segment, else the clip itself."""
        return crop_key(self.index, self.segment)


def crop_key(index: int, segment: int = -1) -> int:
    return segment if segment >= 0 else index


def count_clips(frames: int, frames_per_clip: int, stride: int, frames_per_segment: int = 0) -> int:
    """How many clips :func:`iter_clips` cuts from ``frames`` sampled frames: full clips every
    ``stride``, plus a padded tail when frames are left over; with ``frames_per_segment`` (a
    segments plan: every segment has exactly that many) the same, segment by segment."""
    if frames_per_segment:
        return (frames // frames_per_segment) * count_clips(frames_per_segment, frames_per_clip, stride)
    k = frames_per_clip
    if frames < k:
        return 1 if frames > 0 else 0
    full = (frames - k) // stride + 1
    # after the last full clip the tail holds what follows its start + stride (frames a stride
    # longer than the clip skips are never kept), if more than what that clip already covered
    return full + (1 if frames - full * stride > max(0, k - stride) else 0)


def pad_to(image: np.ndarray, size: int) -> np.ndarray:
    """Edge-pad an ``[H, W, 3]`` image so both sides are at least ``size``."""
    h, w = image.shape[:2]
    if h >= size and w >= size:
        return image
    ph, pw = max(0, size - h), max(0, size - w)
    return np.pad(image, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)), mode="edge")


def crop_boxes(height: int, width: int, spec: ClipSpec, clip_index: int) -> list[tuple[int, int, bool]]:
    """``(top, left, hflip)`` of every crop for a clip, for frames of the given (padded) size."""
    s = spec.crop_size
    center = ((height - s) // 2, (width - s) // 2, False)
    if spec.crop == "center":
        return [center]
    if spec.crop == "random":
        rng = np.random.default_rng((spec.seed, clip_index))
        return [(int(rng.integers(0, height - s + 1)), int(rng.integers(0, width - s + 1)), False)]
    five = [
        (0, 0, False),
        (0, width - s, False),
        (height - s, 0, False),
        (height - s, width - s, False),
        center,
    ]
    if spec.crop == "five":
        return five
    return five + [(t, left, True) for t, left, _ in five]


def crop_frames(images: list[np.ndarray], spec: ClipSpec, clip_index: int) -> np.ndarray:
    """``T`` frames -> uint8 ``[T, crops, S, S, 3]`` with the same boxes on every frame."""
    s = spec.crop_size
    padded = [pad_to(img, s) for img in images]
    h, w = padded[0].shape[:2]
    boxes = crop_boxes(h, w, spec, clip_index)
    out = np.empty((len(padded), len(boxes), s, s, 3), dtype=np.uint8)
    for t, img in enumerate(padded):
        if img.shape[:2] != (h, w):  # resolution changed mid-stream: centre it on the first frame's size
            img = center_crop(pad_to(img, max(h, w)), max(h, w))[:h, :w]
        for c, (top, left, flip) in enumerate(boxes):
            crop = img[top : top + s, left : left + s]
            out[t, c] = crop[:, ::-1] if flip else crop
    return out


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """Centre ``size``x``size`` crop of an ``[H, W, 3]`` image; smaller sides are edge-padded."""
    image = pad_to(image, size)
    h, w = image.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return image[top : top + size, left : left + size]


def iter_clips(frames: Iterable[DecodedFrame], spec: ClipSpec, step_s: float, *, crop: bool = True) -> Iterator[Clip]:
    """Stream clips from a frame iterator holding at most ``frames_per_clip`` frames.

    ``step_s`` is the sampling interval; a clip's ``end_s`` is its last frame's time plus one step
    (the span that frame stands for). ``crop=False`` keeps the frames as decoded (``pixels`` is
    ``[T, *frame.shape]``), for crops made on the device (``clips.device``). Frames tagged with
    segments (a segments plan) are cut segment by segment; clip indices run on across segments.
    """
    k = spec.frames_per_clip
    index = 0
    for segment, run in groupby(frames, key=lambda f: getattr(f, "segment", -1)):
        for items in _windows(((f.pts_s, f.image) for f in run), k, spec.stride):
            times = [t for t, _ in items]
            images = [img for _, img in items]
            while len(images) < k:  # tail padding
                images.append(images[-1])
                times.append(times[-1])
            yield Clip(
                index=index,
                start_s=times[0],
                end_s=items[-1][0] + step_s,
                frame_times=np.asarray(times, dtype=np.float64),
                pixels=crop_frames(images, spec, crop_key(index, segment)) if crop else np.stack(images),
                segment=segment,
            )
            index += 1


def _windows(items: Iterable[T], k: int, stride: int) -> Iterator[list[T]]:
    """Clips of ``k`` items starting every ``stride``, then the leftover items no clip covered
    (the tail, padded by the caller); holds at most ``k`` items."""
    buf: deque[T] = deque()
    next_start = 0  # item index at which the next clip starts
    emitted = 0
    for seen, item in enumerate(items):
        if seen >= next_start:
            buf.append(item)
        if len(buf) == k:
            yield list(buf)
            emitted += 1
            next_start += stride
            # keep only items that belong to the next clip (overlap when stride < k)
            for _ in range(min(stride, k)):
                buf.popleft()
    if buf and (emitted == 0 or len(buf) > max(0, k - stride)):
        yield list(buf)
