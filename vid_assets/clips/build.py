"""Clip assembly.

A clip is ``frames_per_clip`` consecutive *sampled* frames, a new clip starting every ``stride``
sampled frames. Clip pixels stay uint8 ``[T, crops, S, S, 3]``: 4x smaller than float32, and the
float conversion and normalisation belong on the accelerator (see ``extractors``).

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


@dataclass(frozen=True)
class ClipSpec:
    frames_per_clip: int = 2
    stride: int = 2
    crop_size: int = 224
    crop: str = "center"

    def __post_init__(self) -> None:
        if self.frames_per_clip < 1 or self.stride < 1:
            raise ValueError("frames_per_clip and stride must be >= 1")
        if self.crop != "center":
            raise ValueError(f"unsupported crop mode {self.crop!r} (supported: 'center')")

    @property
    def num_crops(self) -> int:
        return 1

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Clip:
    index: int
    start_s: float
    end_s: float
    frame_times: np.ndarray  # float64 [T] (pts of each frame, padded frames repeat the last pts)
    pixels: np.ndarray  # uint8 [T, crops, S, S, 3]


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """Centre ``size``x``size`` crop of an ``[H, W, 3]`` image; smaller sides are edge-padded."""
    h, w = image.shape[:2]
    if h < size or w < size:
        ph, pw = max(0, size - h), max(0, size - w)
        image = np.pad(image, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)), mode="edge")
        h, w = image.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return image[top : top + size, left : left + size]


def iter_clips(frames: Iterable[DecodedFrame], spec: ClipSpec, step_s: float) -> Iterator[Clip]:
    """Stream clips from a frame iterator holding at most ``frames_per_clip`` cropped frames.

    ``step_s`` is the sampling interval; a clip's ``end_s`` is its last frame's time plus one step
    (the span that frame stands for).
    """
    k, stride = spec.frames_per_clip, spec.stride
    buf: deque[tuple[float, np.ndarray]] = deque()
    next_start = 0  # sampled-frame index at which the next clip starts
    index = 0

    def make(items: list[tuple[float, np.ndarray]]) -> Clip:
        times = [t for t, _ in items]
        crops = [c for _, c in items]
        while len(crops) < k:  # tail padding
            crops.append(crops[-1])
            times.append(times[-1])
        return Clip(
            index=index,
            start_s=times[0],
            end_s=items[-1][0] + step_s,
            frame_times=np.asarray(times, dtype=np.float64),
            pixels=np.stack(crops)[:, None],
        )

    for seen, frame in enumerate(frames):
        if seen >= next_start:
            buf.append((frame.pts_s, center_crop(frame.image, spec.crop_size)))
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
