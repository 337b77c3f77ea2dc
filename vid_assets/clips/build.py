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
  to every frame of the clip (temporal consistency, reproducible across runs and machines).

``crop_reduce="mean"`` asks the extractor step to average features over crops (one row per clip).

Tail rule (documented in the README): a final clip with fewer than ``frames_per_clip`` frames is
kept and padded by repeating its last frame, so every video with at least one decodable frame
yields at least one clip and every second of video is covered.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

import numpy as np

from vid_assets.media.decode import DecodedFrame

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
    ``[T, *frame.shape]``), for crops made on the device (``clips.device``).
    """
    k, stride = spec.frames_per_clip, spec.stride
    buf: deque[tuple[float, np.ndarray]] = deque()
    next_start = 0  # sampled-frame index at which the next clip starts
    index = 0

    def make(items: list[tuple[float, np.ndarray]]) -> Clip:
        times = [t for t, _ in items]
        images = [img for _, img in items]
        while len(images) < k:  # tail padding
            images.append(images[-1])
            times.append(times[-1])
        return Clip(
            index=index,
            start_s=times[0],
            end_s=items[-1][0] + step_s,
            frame_times=np.asarray(times, dtype=np.float64),
            pixels=crop_frames(images, spec, index) if crop else np.stack(images),
        )

    for seen, frame in enumerate(frames):
        if seen >= next_start:
            buf.append((frame.pts_s, frame.image))
        if len(buf) == k:
            yield make(list(buf))
            index += 1
            next_start += stride
            # keep only frames that belong to the next clip (overlap when stride < k)
            for _ in range(min(stride, k)):
                buf.popleft()
    if buf and (index == 0 or len(buf) > max(0, k - stride)):
        # leftovers holding frames no emitted clip covers form a padded tail clip
        yield make(list(buf))
