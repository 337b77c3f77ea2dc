"""What decoding yields and reports: frames, their colour facts, video facts, stats and errors."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


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
    skipped: int = 0  # frames no target could pick, dropped by the decoder unreferenced (not decoded)
    kept: int = 0  # frames returned
    seeks: int = 0  # of them jumps:
    jumps: int = 0  # seeks to a key frame presenting by the next target, the stretch before it not decoded
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
