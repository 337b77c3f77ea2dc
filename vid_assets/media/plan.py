"""Sampling plans: which frames of a video we decode. One frozen value object, stored verbatim with
the features (reproducibility) and hashed into data versions.

Modes:

- ``fps``: one frame every ``1/fps`` seconds of stream time (e.g. 1 fps for DINOv2-style per-frame
  features, 4 fps for dense ones). The frame for time ``t`` is the frame whose pts is nearest to
  ``t`` (ties: the later one); a frame is never returned twice.
- ``every_n``: every ``every_n_frames``-th frame in presentation order (the old scripts' loop).
- ``segments``: the video is cut into ``segment_s``-second segments and ``frames_per_segment``
  frames are taken uniformly inside each (``t = start + j * segment_s / F``); with
  ``max_segments``, that many segments are chosen uniformly over the whole video. Segments tile the
  video from the start; a tail shorter than one segment is not sampled. A segment always has
  exactly F frames (a frame may repeat when the source is sparser than the plan). A video shorter
  than one segment gives one short segment: F frames spread uniformly over its duration.
- ``keyframes``: only key frames (cheap thumbnails / shot-level sampling).

``start_s`` / ``end_s`` trim every mode. ``short_side`` is the size each kept frame is resized to
(aspect kept; antialiased bilinear, see ``decode.to_rgb``) as soon as it is decoded, so memory per
frame is bounded whatever the resolution.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

MODES = ("fps", "every_n", "segments", "keyframes")


@dataclass(frozen=True)
class Target:
    time_s: float
    segment: int = -1  # segment index (segments mode), else -1


@dataclass(frozen=True)
class SamplingPlan:
    mode: str = "fps"
    fps: float = 2.0
    every_n_frames: int = 1
    segment_s: float = 5.0
    frames_per_segment: int = 20
    max_segments: int | None = None
    start_s: float = 0.0
    end_s: float | None = None
    short_side: int = 256

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.every_n_frames < 1:
            raise ValueError("every_n_frames must be >= 1")
        if not self.segment_s > 0 or self.frames_per_segment < 1:
            raise ValueError("segment_s must be > 0 and frames_per_segment >= 1")
        if self.max_segments is not None and self.max_segments < 1:
            raise ValueError("max_segments must be >= 1")
        if self.start_s < 0 or (self.end_s is not None and self.end_s <= self.start_s):
            raise ValueError(f"bad trim [{self.start_s}, {self.end_s})")
        if self.short_side < 16:
            raise ValueError(f"short_side must be >= 16, got {self.short_side}")

    # -- convenience constructors ----------------------------------------------------------------
    @classmethod
    def at_fps(cls, fps: float, **kw) -> SamplingPlan:
        return cls(mode="fps", fps=fps, **kw)

    @classmethod
    def every_n(cls, n: int, **kw) -> SamplingPlan:
        return cls(mode="every_n", every_n_frames=n, **kw)

    @classmethod
    def segments(cls, segment_s: float, frames: int, max_segments: int | None = None, **kw) -> SamplingPlan:
        return cls(mode="segments", segment_s=segment_s, frames_per_segment=frames, max_segments=max_segments, **kw)

    @classmethod
    def keyframes(cls, **kw) -> SamplingPlan:
        return cls(mode="keyframes", **kw)

    # -- facts -----------------------------------------------------------------------------------
    @property
    def step_s(self) -> float:
        """Nominal spacing of kept frames (the span one kept frame stands for)."""
        if self.mode == "segments":
            return self.segment_s / self.frames_per_segment
        return 1.0 / self.fps

    @property
    def uses_targets(self) -> bool:
        return self.mode in ("fps", "segments")

    def keeps(self, index: int, key_frame: bool) -> bool:
        """Whether a stream plan keeps the ``index``-th frame of its window (time plans: always)."""
        if self.mode == "keyframes":
            return key_frame
        if self.mode == "every_n":
            return index % self.every_n_frames == 0
        return True

    def window(self, duration_s: float) -> tuple[float, float]:
        end = duration_s if self.end_s is None else min(self.end_s, duration_s)
        return self.start_s, end

    def targets(self, duration_s: float) -> list[Target]:
        """Sample times for the time-based modes, ascending (may repeat in segments mode)."""
        if not self.uses_targets:
            raise ValueError(f"mode {self.mode!r} has no target times")
        if not math.isfinite(duration_s):
            raise ValueError("duration unknown: time-based plans need a duration (use every_n / keyframes)")
        start, end = self.window(duration_s)
        if end <= start:
            return []
        if self.mode == "fps":
            n = max(1, math.ceil((end - start) * self.fps - 1e-9))
            return [Target(start + k / self.fps) for k in range(n)]
        span = end - start
        n_seg = max(1, math.floor(span / self.segment_s + 1e-9))
        seg_len = min(self.segment_s, span)  # shorter only when the video is shorter than one segment
        chosen = range(n_seg)
        if self.max_segments is not None and n_seg > self.max_segments:
            chosen = np.unique(np.linspace(0, n_seg - 1, self.max_segments).round().astype(int)).tolist()
        step = seg_len / self.frames_per_segment
        return [
            Target(start + i * self.segment_s + j * step, segment=i)
            for i in chosen
            for j in range(self.frames_per_segment)
        ]

    def expected_frames(self, duration_s: float, frames: int = 0, fps: float = 0.0) -> int | None:
        """How many frames this plan keeps of a video of ``duration_s`` (``frames`` declared by the
        container, ``fps`` its rate): exact for time-based plans, the container's count for
        ``every_n``, None where only decoding tells (key frames, unknown duration)."""
        if self.uses_targets:
            return len(self.targets(duration_s)) if math.isfinite(duration_s) else None
        if self.mode == "every_n":
            total = frames or (round(duration_s * fps) if math.isfinite(duration_s) and fps else 0)
            return math.ceil(total / self.every_n_frames) if total else None
        return None

    def iter_targets(self, duration_s: float) -> Iterator[Target]:
        """Like :meth:`targets`, lazily; ``fps`` mode also works on streams of unknown duration
        (live input): targets then run until the stream ends (or ``end_s``)."""
        if self.mode == "fps" and not math.isfinite(duration_s):
            k = 0
            while self.end_s is None or self.start_s + k / self.fps < self.end_s:
                yield Target(self.start_s + k / self.fps)
                k += 1
            return
        yield from self.targets(duration_s)

    def to_dict(self) -> dict:
        base = {"mode": self.mode, "short_side": self.short_side, "start_s": self.start_s, "end_s": self.end_s}
        if self.mode == "fps":
            base["fps"] = self.fps
        elif self.mode == "every_n":
            base["every_n_frames"] = self.every_n_frames
        elif self.mode == "segments":
            base |= {
                "segment_s": self.segment_s,
                "frames_per_segment": self.frames_per_segment,
                "max_segments": self.max_segments,
            }
        return base

    @classmethod
    def from_dict(cls, d: dict) -> SamplingPlan:
        d = dict(d)
        d.pop("kind", None)
        return cls(**d)
