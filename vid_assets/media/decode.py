"""Streaming PyAV decode: exact, fast, memory-bounded sampling.

- **Exact.** Sample times come from each frame's pts and the stream time base, never from
  ``index / nominal_fps``, so variable-frame-rate files are timed right; every kept frame carries
  its pts in seconds (from the stream start).
- **Fast.** Every frame the codec needs is decoded (FFmpeg frame threads), but only kept frames are
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
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from vid_assets.media.opening import is_live, open_source
from vid_assets.media.plan import SamplingPlan, Target


class VideoDecodeError(Exception):
    """A video that cannot be (fully) decoded. The message says what is wrong, for humans."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.reason = message
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
    container: str = ""
    frames: int = 0  # as declared by the container (0 = unknown, e.g. MKV/WebM)
    bit_rate: int = 0
    rotation: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DecodeStats:
    """What a decode did; filled in as frames stream (pass one to :func:`iter_frames`)."""

    decoded: int = 0  # frames out of the decoder
    kept: int = 0  # frames returned
    seeks: int = 0
    corrupt: int = 0  # frames FFmpeg flagged as concealed/damaged (kept)
    missing: int = 0  # holes in a constant-rate timeline: damage the demuxer skipped, or frames the recorder dropped
    end_pts_s: float = -1.0  # pts of the last decoded frame
    partial: str | None = None  # why decoding stopped early, when allow_partial kept the rest
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DecodedFrame:
    """A sampled frame: ``image`` is uint8 RGB ``[H, W, 3]`` (None if not converted)."""

    index: int
    pts_s: float
    image: np.ndarray | None
    segment: int = -1  # segments mode: which segment this frame belongs to
    key_frame: bool = False
    color: YuvInfo | None = None  # convert="yuv420p": how to turn ``image`` into RGB (on the device)
    rotation: int = 0  # convert="rgb-source": display rotation still to apply (``resize_rgb``)


@dataclass(frozen=True)
class YuvInfo:
    """What a device needs to convert a packed YUV 4:2:0 frame to RGB as FFmpeg would."""

    height: int  # luma rows; ``image`` is ``[height * 3 // 2, width]``
    width: int
    matrix: str = "bt601"  # bt601 | bt709 | bt2020 (FFmpeg's default for untagged video: bt601)
    full_range: bool = False
    rotation: int = 0  # display rotation, degrees counter-clockwise (applied after conversion)


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


def scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    if width <= height:
        return short_side, max(1, round(height * short_side / width))
    return max(1, round(width * short_side / height)), short_side


def _reformat(frame: av.VideoFrame, w: int, h: int, fmt: str, reformatter: VideoReformatter | None) -> av.VideoFrame:
    """swscale scale + convert, single-threaded, through the caller's per-video context."""
    rf = reformatter or VideoReformatter()
    return rf.reformat(frame, width=w, height=h, format=fmt, interpolation="BILINEAR", threads=1)


# How kept frames become RGB at the plan's short side; stored with the frames and the features.
RGB_RESIZE = "swscale rgb24 at source size, then bilinear antialiased resize (torch; as torchvision/PIL)"


def to_rgb(frame: av.VideoFrame, short_side: int, reformatter: VideoReformatter | None = None) -> np.ndarray:
    """RGB at the source size (swscale), resized to ``short_side`` with torch's antialiased bilinear
    filter; display rotation is applied after.

    Why two steps and not swscale's scale+convert in one: swscale's unscaled YUV->RGB path is SIMD
    and nearly free (0.03 ms for 320x240 on cpu2), torch's uint8 resize has an AVX2 path, and
    together they ran 1.8-3.5x faster than a scaled swscale conversion on every size measured
    (176x144 up to 1920x1080; benchmarks/frame_convert.py, RESULTS.md). The pixels are then exactly those of
    torchvision's ``Resize(antialias=True)`` / PIL's bilinear on the decoded RGB frame, the
    preprocessing most models were trained with, rather than swscale's own filter.

    Pass one ``reformatter`` per video: ``frame.to_ndarray(...)`` would build a new swscale
    context (filter tables, and a thread pool by default) for every frame. swscale runs on one
    thread here: decoders and the model already keep the other cores busy.
    """
    return resize_rgb(rgb_at_source(frame, reformatter), short_side, frame_rotation(frame))


def rgb_at_source(frame: av.VideoFrame, reformatter: VideoReformatter | None = None) -> np.ndarray:
    """The frame as uint8 RGB ``[H, W, 3]`` at its coded size, not rotated (first half of ``to_rgb``)."""
    return np.ascontiguousarray(_reformat(frame, frame.width, frame.height, "rgb24", reformatter).to_ndarray())


def frame_rotation(frame: av.VideoFrame) -> int:
    """Display-matrix rotation in degrees counter-clockwise (0, 90, 180 or 270): the matrix's angle
    rounded to a quarter turn (a float matrix can read -89.99)."""
    return round(float(frame.rotation or 0) / 90) * 90 % 360


def resize_rgb(img: np.ndarray, short_side: int, rotation: int = 0) -> np.ndarray:
    """Second half of ``to_rgb``: resize to ``short_side`` (antialiased bilinear), then rotate."""
    h0, w0 = img.shape[:2]
    w, h = scaled_size(w0, h0, short_side)
    if (w, h) != (w0, h0):
        import torch  # here, not at module level: `vid_assets.media` alone stays light (~2 s less)
        import torch.nn.functional as F

        # a proper channels_last view (batch dim first, then permute) takes torch's uint8 fast path
        x = torch.from_numpy(img).unsqueeze(0).permute(0, 3, 1, 2)
        y = F.interpolate(x, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        img = y[0].permute(1, 2, 0).numpy()
    if rotation:
        img = np.ascontiguousarray(np.rot90(img, k=(rotation // 90) % 4))
    return img


_MATRIX = {1: "bt709", 9: "bt2020", 10: "bt2020"}  # AVColorSpace -> matrix; everything else bt601


def to_yuv420(
    frame: av.VideoFrame, size: tuple[int, int], reformatter: VideoReformatter | None = None
) -> tuple[np.ndarray, YuvInfo]:
    """Packed ``[H * 3 // 2, W]`` yuv420p planes at the stream's (even) size, without RGB conversion
    or scaling on the CPU: the device does both (``clips.device``). 8-bit 4:2:0 frames (the common
    case) are only copied; other formats (10-bit, 4:4:4, full-range "yuvj") and size changes go
    through swscale to 8-bit limited-range yuv420p first."""
    w, h = size
    native = frame.format.name == "yuv420p" and frame.width == w and frame.height == h
    if not native:
        frame = _reformat(frame, w, h, "yuv420p", reformatter)
    info = YuvInfo(
        height=h,
        width=w,
        matrix=_MATRIX.get(int(frame.colorspace or 2), "bt601"),
        full_range=native and int(frame.color_range or 0) == 2,
        rotation=frame_rotation(frame),
    )
    return frame.to_ndarray(), info


class _Reader:
    """Presentation-order frames with their pts in seconds; can seek. Enforces the time budget."""

    def __init__(self, container, stream, desc: str, stats: DecodeStats, budget_s: float | None, started: float):
        self.container, self.stream, self.desc, self.stats = container, stream, desc, stats
        self.tb = stream.time_base
        self.start_pts = stream.start_time or 0
        self.budget_s, self.started = budget_s, started
        self._it = container.decode(stream)
        self.last_pts_s = -math.inf
        self.last_key_s: float | None = None
        self.gop_s: float | None = None  # observed key-frame spacing
        self.exhausted = False  # the stream ended (as opposed to: every sample was served)
        # FFmpeg flags only some damaged frames; a hole in the timestamps shows the rest. Only for a
        # stream whose mean rate is its timestamp rate: in variable-rate video, gaps are normal.
        avg, guessed = stream.average_rate, stream.guessed_rate
        self.step_s = 1 / float(avg) if avg and guessed and abs(float(avg / guessed) - 1) < 0.01 else None

    def __iter__(self):
        return self

    def __next__(self) -> tuple[float, av.VideoFrame]:
        while True:
            if self.budget_s is not None and time.monotonic() - self.started > self.budget_s:
                raise VideoDecodeError(
                    f"decode time budget of {self.budget_s:g} s exceeded at {max(self.last_pts_s, 0):.1f} s",
                    source=self.desc,
                )
            try:
                frame = next(self._it)  # FFmpegError is handled by the caller
            except StopIteration:
                self.exhausted = True
                raise
            self.stats.decoded += 1
            if frame.pts is None:
                continue
            if getattr(frame, "is_corrupt", False):
                self.stats.corrupt += 1
            pts_s = float((frame.pts - self.start_pts) * self.tb)
            if frame.key_frame:
                if self.last_key_s is not None and pts_s > self.last_key_s:
                    gap = pts_s - self.last_key_s
                    self.gop_s = gap if self.gop_s is None else max(self.gop_s, gap)
                self.last_key_s = pts_s
            if pts_s <= self.last_pts_s:  # duplicate / out-of-order timestamps: keep time monotonic
                continue
            if self.step_s and self.last_pts_s > -math.inf:  # not across a seek
                self.stats.missing += max(round((pts_s - self.last_pts_s) / self.step_s) - 1, 0)
            self.last_pts_s = pts_s
            self.stats.end_pts_s = pts_s
            return pts_s, frame

    def seek(self, t: float) -> None:
        """Position before ``t``: the decoder restarts at the key frame at or before it."""
        target = int(t / self.tb) + self.start_pts
        self.container.seek(max(target, self.start_pts), stream=self.stream, backward=True, any_frame=False)
        self._it = self.container.decode(self.stream)
        self.last_pts_s = -math.inf
        self.last_key_s = None  # key-frame spacing is only measured between consecutive key frames
        self.exhausted = False
        self.stats.seeks += 1


def _select_targets(reader: _Reader, plan: SamplingPlan, duration: float, frame_s: float, seek: str):
    """Yield ``(frame, pts, segment)`` per target: the frame *nearest* to each target time.

    Needs one frame of look-ahead (the last frame before ``t`` and the first at/after it; ties go to
    the later frame), which makes it exact for variable-frame-rate video without any tolerance.
    fps mode never yields the same frame twice; segments mode may (fixed F frames per segment).
    """
    targets = plan.iter_targets(duration)  # lazy: unbounded for fps plans over live input
    target = next(targets, None)
    previous_target: Target | None = None
    ti = 0  # index of ``target``
    prev: tuple[float, av.VideoFrame] | None = None  # newest frame before the current target
    current: tuple[float, av.VideoFrame] | None = None  # newest decoded frame
    last_yield = -math.inf
    seeked_for = -1  # never seek twice for the same target
    dedup = plan.mode == "fps"

    def emit(choice, segment):
        nonlocal last_yield
        if dedup and choice[0] == last_yield:
            return None
        last_yield = choice[0]
        return choice[1], choice[0], segment

    def advance() -> None:
        nonlocal target, previous_target, ti
        previous_target, target, ti = target, next(targets, None), ti + 1

    while target is not None:
        t = target.time_s
        if current is not None and current[0] >= t:
            near_prev = prev is not None and prev[0] < t and (t - prev[0]) < (current[0] - t)
            out = emit(prev if near_prev else current, target.segment)
            if out:
                yield out
            advance()
            continue
        if seeked_for != ti and _should_seek(reader, current, t, frame_s, seek):
            seeked_for = ti
            reader.seek(t)
            prev = current = None
            for attempt in range(3):
                try:
                    current = next(reader)
                except StopIteration:
                    current = None
                    break
                if current[0] <= t:
                    break
                # landed after the target (some HEVC seeks land late): go back further
                reader.seek(max(0.0, t - max(reader.gop_s or 1.0, 1.0) * (2 + attempt)))
            if current is None:
                break
            continue
        try:
            nxt = next(reader)
        except StopIteration:
            break
        prev, current = current, nxt
    # The stream ended before the remaining targets: a target within two frames of the last frame
    # of a file is still on screen (serve it); segments pad the rest of their segment; otherwise stop (the
    # caller's coverage check reports truncation).
    # Live input has no duration to cut at: there, serve a target only when the last frame is the
    # nearest one it could ever get (within half a frame).
    slack = 2 * frame_s if math.isfinite(duration) else 0.5 * frame_s
    while target is not None and current is not None:
        t, seg = target.time_s, target.segment
        in_last = plan.mode == "segments" and previous_target is not None and seg == previous_target.segment
        if t - current[0] > slack and not in_last:
            break
        out = emit(current, seg)
        if out:
            yield out
        advance()


def _should_seek(reader: _Reader, current, t: float, frame_s: float, seek: str) -> bool:
    if seek == "never":
        return False
    pos = current[0] if current is not None else max(reader.last_pts_s, 0.0)
    if seek == "always":
        return current is None or pos + frame_s < t
    # auto: only when at least two GOPs would be decoded for nothing
    gop = reader.gop_s if reader.gop_s is not None else 10.0
    last_key = reader.last_key_s if reader.last_key_s is not None else pos
    return t > max(pos, last_key) + 2.0 * gop and t - pos > 1.0


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
) -> Iterator[DecodedFrame]:
    """Yield the frames ``plan`` asks for, in time order (see the module docstring).

    ``seek``: ``auto`` (seek when the next sample is > 2 GOPs ahead), ``never`` or ``always``.
    ``threads`` caps FFmpeg's decoder threads (0 = FFmpeg's choice); many parallel decoders want 1.
    ``convert=False`` skips pixel conversion (timestamps only, e.g. ``vid-assets inspect``);
    ``convert="yuv420p"`` returns packed YUV planes at the stream size for device-side conversion;
    ``convert="rgb-source"`` returns RGB at the coded size, not yet resized or rotated (the caller
    finishes with ``resize_rgb(image, plan.short_side, frame.rotation)``, e.g. on another thread).
    ``open_options``: extra ``av.open`` arguments, e.g. ``{"format": "mpegts", "options":
    {"analyzeduration": "500000"}}`` for a live pipe, where probing would otherwise wait for 5 s of input.
    """
    stats = stats if stats is not None else DecodeStats()
    started = time.monotonic()
    container, desc = _open(source, open_options=open_options)
    with container:
        stream = _video_stream(container, desc)
        stream.thread_type = "AUTO"
        if threads:
            stream.codec_context.thread_count = threads
        if plan.mode == "keyframes":
            stream.codec_context.skip_frame = "NONKEY"  # ignored by some decoders (VP9): filtered below
        duration = _duration_s(container, stream)
        rate = float(stream.average_rate or stream.guessed_rate or 0) or 30.0
        tol = min(0.5 / rate, 0.5 * plan.step_s)
        live = is_live(desc)
        reader = _Reader(container, stream, desc, stats, time_budget_s, started)
        if plan.mode == "segments" and not math.isfinite(duration):
            raise VideoDecodeError(
                "duration unknown (live or unindexed stream): use an fps, every_n or keyframes plan", source=desc
            )
        if not plan.uses_targets or live or not math.isfinite(duration):
            seek = "never"
        start, end = plan.window(duration if math.isfinite(duration) else math.inf)

        def raw():
            if plan.uses_targets:
                if start > 0 and seek != "never":
                    reader.seek(start)
                yield from _select_targets(reader, plan, duration, 1.0 / rate, seek)
                return
            if start > 0 and not live:
                reader.seek(start)
            i = 0
            for pts, frame in reader:
                if pts + tol < start:
                    continue
                if pts >= end:
                    return
                if plan.mode == "keyframes" and not frame.key_frame:
                    continue
                if plan.mode == "every_n" and i % plan.every_n_frames:
                    i += 1
                    continue
                i += 1
                yield frame, pts, -1

        yuv_size = ((stream.codec_context.width or 2) & ~1, (stream.codec_context.height or 2) & ~1)
        reformatter = VideoReformatter()  # one swscale context per video (see ``to_rgb``)
        try:
            for frame, pts, segment in raw():
                color = None
                rotation = 0
                if convert == "yuv420p":
                    image, color = to_yuv420(frame, yuv_size, reformatter)
                elif convert == "rgb-source":
                    image, rotation = rgb_at_source(frame, reformatter), frame_rotation(frame)
                else:
                    image = to_rgb(frame, plan.short_side, reformatter) if convert else None
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
        raise VideoDecodeError(
            "no decodable video frames" + (" in the requested window" if start > 0 or plan.end_s else ""), source=desc
        )
    if reader.exhausted and math.isfinite(duration) and duration > 0 and not live and plan.end_s is None:
        end_s = stats.end_pts_s + 1.0 / rate
        if end_s < min_coverage * duration and duration - end_s > 1.0:
            reason = f"stream ends at {end_s:.1f} s of {duration:.1f} s (truncated or damaged)"
            if not allow_partial:
                raise VideoDecodeError(reason, source=desc)
            stats.partial = stats.partial or reason
