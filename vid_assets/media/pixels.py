"""Kept frames to pixels: RGB at a short side (swscale at the source size, then torch's resize),
or packed YUV 4:2:0 planes for conversion on the device."""

from __future__ import annotations

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from vid_assets.media.frames import YuvInfo


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
