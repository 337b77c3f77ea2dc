"""Streaming PyAV decode: exact, fast, memory-bounded sampling.

- **Exact.** Sample times come from each frame's pts and the stream time base, never from
  ``index / nominal_fps``, so variable-frame-rate files are timed right; every kept frame carries
  its pts in seconds (from the stream start).
- **Fast.** Only the frames the codec needs are decoded (FFmpeg frame threads; unreferenced
  frames no target can pick are dropped undecoded, see ``sampler.py``), and only kept frames are
  converted: to RGB by FFmpeg (swscale) at the source size, then resized to ``short_side`` by
  torch's uint8 antialiased bilinear kernel (see :func:`to_rgb`), not numpy. When
  the next sample lies more than two GOPs ahead, we seek to the key frame before it instead of
  decoding through; both paths return the same frames (tested).
- **Bounded.** Frames are pulled one at a time; memory is one decoded frame plus one output frame
  whatever the length.
- **Clear failures.** Unreadable input raises :class:`VideoDecodeError` with what is wrong. Damaged
  files: frames FFmpeg conceals are kept and counted (``DecodeStats.corrupt``), frames it drops show
  as holes in a constant-rate timeline (``DecodeStats.missing``); a hard decode error
  or a stream that ends well before its declared duration fails the video (``allow_partial=True``
  keeps the decodable part instead and records where it stopped). A per-video time budget stops
  hangs.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import IO

import av
from av.video.reformatter import VideoReformatter

from vid_assets.media.frames import DecodedFrame, DecodeStats, VideoDecodeError, VideoInfo, YuvInfo
from vid_assets.media.opening import is_live, open_source
from vid_assets.media.pixels import (
    RGB_RESIZE,
    frame_rotation,
    resize_rgb,
    rgb_at_source,
    scaled_size,
    to_rgb,
    to_yuv420,
)
from vid_assets.media.plan import SamplingPlan
from vid_assets.media.sampler import FrameReader, sample

# the value types and pixel helpers callers know by this module
__all__ = [
    "RGB_RESIZE",
    "DecodeStats",
    "DecodedFrame",
    "VideoDecodeError",
    "VideoInfo",
    "YuvInfo",
    "iter_frames",
    "probe",
    "resize_rgb",
    "scaled_size",
    "to_rgb",
]


# PyAV < 19 decodes container metadata strictly unless told otherwise, so one mis-encoded tag would
# fail a whole video; PyAV 19 dropped the switch (and the strict default).
_METADATA_ERRORS = {"metadata_errors": "ignore"} if int(av.__version__.split(".")[0]) < 19 else {}


def _open(source: str | os.PathLike[str] | IO[bytes], timeout_s: float | None = None, open_options: dict | None = None):
    desc = getattr(source, "name", "<stream>") if hasattr(source, "read") else os.fspath(source)
    if not hasattr(source, "read"):
        path = Path(os.fspath(source))
        if "://" not in os.fspath(source) and path.is_file() and path.stat().st_size == 0:
            raise VideoDecodeError("empty file (0 bytes)", source=desc)
    try:
        opened, desc = open_source(source)
    except FileNotFoundError as e:
        raise VideoDecodeError("file not found", source=desc) from e
    except Exception as e:  # fsspec / resolver errors: network, auth, 404 ...
        raise VideoDecodeError(f"cannot open source: {type(e).__name__}: {e}", source=desc) from e
    try:
        kwargs = {**_METADATA_ERRORS, **(open_options or {})}
        if timeout_s is not None and isinstance(opened, str) and "://" in opened:
            kwargs["timeout"] = timeout_s
        return av.open(opened, mode="r", **kwargs), desc
    except FileNotFoundError as e:
        raise VideoDecodeError("file not found", source=desc) from e
    except av.FFmpegError as e:
        if hasattr(opened, "read") and _is_empty(opened):
            raise VideoDecodeError("empty file (0 bytes)", source=desc) from e
        raise VideoDecodeError(f"not a readable video container: {e.strerror or e}", source=desc) from e


def _is_empty(f) -> bool:
    try:
        f.seek(0)
        return f.read(1) == b""
    except Exception:
        return False


def _video_stream(container, source: str) -> av.VideoStream:
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise VideoDecodeError(f"no video stream (streams found: {', '.join(kinds)})", source=source)
    fmt = container.format.name
    if fmt == "image2" or fmt.endswith("_pipe"):  # FFmpeg's still-image demuxers (jpeg_pipe, png_pipe...)
        raise VideoDecodeError(f"a still image ({fmt}), not a video", source=source)
    return container.streams.video[0]


def _duration_s(container, stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return float("nan")


def _rotation(container, stream, max_packets: int = 64) -> int:
    """Display rotation in degrees counter-clockwise (0, 90, 180 or 270), as ``frame_rotation``.

    PyAV 18 exposes the display matrix only on decoded frames (``VideoFrame.rotation``; a phone's
    portrait video reads -90 there), not on the stream, so this decodes the first frame, giving up
    after ``max_packets`` packets (a stream that yields nothing that early reports 0).
    """
    try:
        for n, packet in enumerate(container.demux(stream)):
            for frame in packet.decode():
                return frame_rotation(frame)
            if n >= max_packets:
                break
    except (av.FFmpegError, ValueError):
        pass
    return 0


def probe(source, timeout_s: float | None = 30.0) -> VideoInfo:
    """Container-level facts; only the first frame is decoded (for its display rotation)."""
    container, desc = _open(source, timeout_s)
    with container:
        stream = _video_stream(container, desc)
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
            container=container.format.name,
            frames=int(stream.frames or 0),
            bit_rate=int(container.bit_rate or 0),
            rotation=_rotation(container, stream),
        )


def iter_frames(
    source,
    plan: SamplingPlan,
    *,
    time_budget_s: float | None = 600.0,
    min_coverage: float = 0.8,
    allow_partial: bool = False,
    threads: int = 0,
    seek: str = "auto",
    convert: bool | str = True,
    stats: DecodeStats | None = None,
    open_options: dict | None = None,
    skip_unneeded: bool = True,
) -> Iterator[DecodedFrame]:
    """Yield the frames ``plan`` asks for, in time order (see the module docstring). ``seek``:
    ``auto`` (seek when the next sample is > 2 GOPs ahead), ``never`` or ``always``.
    ``skip_unneeded=False`` decodes also the unreferenced frames no sample can pick (``sampler.py``).
    ``threads`` caps FFmpeg's decoder threads (0 = FFmpeg's choice); many parallel decoders want 1.
    ``convert=False`` skips pixel conversion (timestamps only, e.g. ``vid-assets inspect``);
    ``convert="yuv420p"`` returns packed YUV planes at the stream size for device-side conversion;
    ``convert="rgb-source"`` returns RGB at the coded size, not yet resized or rotated (the caller
    finishes with ``resize_rgb(image, plan.short_side, frame.rotation)``, e.g. on another thread).
    ``open_options``: extra ``av.open`` arguments, e.g. ``{"format": "mpegts", "options":
    {"analyzeduration": "500000"}}`` for a live pipe, where probing would otherwise wait for 5 s."""
    stats = stats if stats is not None else DecodeStats()
    started = time.monotonic()
    container, desc = _open(source, open_options=open_options)
    with container:
        stream = _video_stream(container, desc)
        _tune(stream, plan, threads)
        duration = _duration_s(container, stream)
        rate = float(stream.average_rate or stream.guessed_rate or 0) or 30.0
        if plan.kind.needs_duration and not math.isfinite(duration):
            raise VideoDecodeError(
                f"duration unknown (live or unindexed stream): a {plan.mode} plan needs one; use fps, every_n"
                " or keyframes",
                source=desc,
            )
        live = is_live(desc)
        reader = FrameReader(container, stream, desc, stats, time_budget_s, started)
        pixels = _pixels(stream, plan, convert)
        try:
            for frame, pts, segment in sample(reader, plan, duration, rate, seek, live, skip_unneeded):
                image, color, rotation = pixels(frame)
                yield DecodedFrame(stats.kept, pts, image, segment, bool(frame.key_frame), color, rotation)
                stats.kept += 1
        except av.FFmpegError as e:
            at = f" at {stats.end_pts_s:.1f} s" if stats.end_pts_s >= 0 else ""
            reason = f"decode error{at}: {e.strerror or e}"
            if not allow_partial or stats.kept == 0:
                raise VideoDecodeError(reason, source=desc) from e
            stats.partial = reason
        finally:
            stats.seconds = time.monotonic() - started
    if stats.kept == 0:
        where = " in the requested window" if plan.start_s > 0 or plan.end_s else ""
        raise VideoDecodeError("no decodable video frames" + where, source=desc)
    complete = reader.exhausted and math.isfinite(duration) and duration > 0 and not live and plan.end_s is None
    if complete:
        _check_coverage(stats, duration, rate, min_coverage, allow_partial, desc)


def _tune(stream, plan: SamplingPlan, threads: int) -> None:
    stream.thread_type = "AUTO"
    if threads:
        stream.codec_context.thread_count = threads
    if plan.kind.key_frames_only:
        stream.codec_context.skip_frame = "NONKEY"  # ignored by some decoders (VP9): filtered after


def _pixels(stream, plan: SamplingPlan, convert: bool | str):
    """``frame -> (image, colour facts, rotation still to apply)`` as ``convert`` asks."""
    yuv_size = ((stream.codec_context.width or 2) & ~1, (stream.codec_context.height or 2) & ~1)
    reformatter = VideoReformatter()  # one swscale context per video (see ``to_rgb``)
    if convert == "yuv420p":
        return lambda frame: (*to_yuv420(frame, yuv_size, reformatter), 0)
    if convert == "rgb-source":
        return lambda frame: (rgb_at_source(frame, reformatter), None, frame_rotation(frame))
    if convert:
        return lambda frame: (to_rgb(frame, plan.short_side, reformatter), None, 0)
    return lambda frame: (None, None, 0)


def _check_coverage(
    stats: DecodeStats, duration: float, rate: float, min_coverage: float, allow_partial: bool, desc: str
) -> None:
    """A stream that ends well before its declared duration is truncated or damaged."""
    end_s = stats.end_pts_s + 1.0 / rate
    if end_s < min_coverage * duration and duration - end_s > 1.0:
        reason = f"stream ends at {end_s:.1f} s of {duration:.1f} s (truncated or damaged)"
        if not allow_partial:
            raise VideoDecodeError(reason, source=desc)
        stats.partial = stats.partial or reason
