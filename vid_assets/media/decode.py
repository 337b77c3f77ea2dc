"""Streaming PyAV decode with fps sampling.

Frames are pulled from FFmpeg one at a time and only the sampled ones are converted (scaled and
turned into RGB by FFmpeg's swscale, not numpy), so peak memory is one decoded frame plus one
output frame regardless of video length. Sample times come from each frame's pts and the stream
time base, never from ``index / nominal_fps``, so variable-frame-rate files are timed right.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vid_assets.media.plan import SamplingPlan


class VideoDecodeError(Exception):
    """A video that cannot be (fully) decoded. The message says what is wrong, for humans."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        super().__init__(f"{message} ({source})" if source else message)


@dataclass(frozen=True)
class VideoInfo:
    duration_s: float
    width: int
    height: int
    avg_fps: float
    codec: str
    pix_fmt: str | None
    has_audio: bool

    def to_dict(self) -> dict:
        return self.__dict__.copy()


@dataclass(frozen=True)
class DecodedFrame:
    """A sampled frame: ``image`` is uint8 RGB ``[H, W, 3]``; ``pts_s`` is seconds from stream start."""

    index: int
    pts_s: float
    image: np.ndarray


def _open(source: str | os.PathLike[str]) -> av.container.InputContainer:
    path = Path(source)
    if path.exists() and path.is_file() and path.stat().st_size == 0:
        raise VideoDecodeError("empty file (0 bytes)", source=str(source))
    try:
        return av.open(str(source), mode="r", metadata_errors="ignore")
    except FileNotFoundError as e:
        raise VideoDecodeError("file not found", source=str(source)) from e
    except av.FFmpegError as e:
        raise VideoDecodeError(f"not a readable video container: {e.strerror or e}", source=str(source)) from e


def _video_stream(container: av.container.InputContainer, source: str) -> av.VideoStream:
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise VideoDecodeError(f"no video stream (streams found: {', '.join(kinds)})", source=source)
    return container.streams.video[0]


def _duration_s(container: av.container.InputContainer, stream: av.VideoStream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return float("nan")


def probe(source: str | os.PathLike[str]) -> VideoInfo:
    """Container-level facts without decoding pixels."""
    with _open(source) as container:
        stream = _video_stream(container, str(source))
        cc = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate or Fraction(0)
        return VideoInfo(
            duration_s=_duration_s(container, stream),
            width=cc.width,
            height=cc.height,
            avg_fps=float(rate),
            codec=cc.name,
            pix_fmt=cc.pix_fmt,
            has_audio=bool(container.streams.audio),
        )


def _scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    if width <= height:
        return short_side, max(1, round(height * short_side / width))
    return max(1, round(width * short_side / height)), short_side


def _to_rgb(frame: av.VideoFrame, short_side: int) -> np.ndarray:
    w, h = _scaled_size(frame.width, frame.height, short_side)
    img = frame.reformat(width=w, height=h, format="rgb24", interpolation="BILINEAR").to_ndarray()
    rotation = getattr(frame, "rotation", 0) or 0  # display-matrix rotation, degrees counter-clockwise
    if rotation % 360:
        img = np.ascontiguousarray(np.rot90(img, k=(rotation // 90) % 4))
    return img


def iter_frames(
    source: str | os.PathLike[str],
    plan: SamplingPlan,
    *,
    time_budget_s: float | None = 600.0,
    min_coverage: float = 0.8,
    threads: int = 0,
) -> Iterator[DecodedFrame]:
    """Yield frames sampled every ``plan.step_s`` seconds of stream time.

    The frame for target time ``t`` is the first frame whose pts is at or after ``t`` (within half
    a nominal frame). Raises :class:`VideoDecodeError` for unreadable input, decode errors, a
    stream that ends well before its declared duration (truncation; the whole video fails rather
    than silently storing a partial one), or when ``time_budget_s`` is exceeded. ``threads`` caps
    FFmpeg's decoder threads (0 = FFmpeg's choice, one per core): many parallel decoders want 1-2.
    """
    src = str(source)
    started = time.monotonic()
    with _open(source) as container:
        stream = _video_stream(container, src)
        stream.thread_type = "AUTO"
        if threads:
            stream.codec_context.thread_count = threads
        duration = _duration_s(container, stream)
        tb = stream.time_base
        start_pts = stream.start_time or 0
        rate = float(stream.average_rate or stream.guessed_rate or 0) or 30.0
        tol = min(0.5 / rate, 0.5 * plan.step_s)
        next_t = 0.0
        emitted = 0
        last_pts_s = -1.0
        try:
            for frame in container.decode(stream):
                if time_budget_s is not None and time.monotonic() - started > time_budget_s:
                    raise VideoDecodeError(
                        f"decode time budget of {time_budget_s:.0f} s exceeded at {last_pts_s:.1f} s",
                        source=src,
                    )
                if frame.pts is None:
                    continue
                pts_s = float((frame.pts - start_pts) * tb)
                if pts_s <= last_pts_s:  # duplicate / out-of-order timestamps: keep time monotonic
                    continue
                last_pts_s = pts_s
                if pts_s + tol < next_t:
                    continue
                yield DecodedFrame(index=emitted, pts_s=pts_s, image=_to_rgb(frame, plan.short_side))
                emitted += 1
                while next_t <= pts_s + tol:
                    next_t += plan.step_s
        except av.FFmpegError as e:
            at = f" at {last_pts_s:.1f} s" if last_pts_s >= 0 else ""
            raise VideoDecodeError(f"decode error{at}: {e.strerror or e}", source=src) from e
    if emitted == 0:
        raise VideoDecodeError("no decodable video frames", source=src)
    if duration == duration and duration > 0:  # not NaN
        frame_s = 1.0 / rate
        end_s = last_pts_s + frame_s
        if end_s < min_coverage * duration and duration - end_s > 1.0:
            raise VideoDecodeError(
                f"stream ends at {end_s:.1f} s of {duration:.1f} s (truncated or damaged)", source=src
            )
