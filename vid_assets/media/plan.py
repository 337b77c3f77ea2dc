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

from vid_assets.media.modes import MODES, Mode, Target

__all__ = ["MODES", "Mode", "SamplingPlan", "Target"]


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
            raise ValueError(f"mode must be one of {tuple(MODES)}, got {self.mode!r}")
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
        MODES[self.mode].check(self)

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

    # -- facts: each answered by the plan's mode (``media/modes.py``) ---------------------------
    @property
    def kind(self) -> Mode:
        return MODES[self.mode]

    @property
    def step_s(self) -> float:
        """Nominal spacing of kept frames (the span one kept frame stands for)."""
        return self.kind.step_s(self)

    @property
    def uses_targets(self) -> bool:
        """Time-based: the frame nearest each target time (else: frames kept as the stream goes)."""
        return self.kind.uses_targets

    @property
    def segmented(self) -> bool:
        """Frames carry their segment, and clips never cross one."""
        return self.kind.segmented

    @property
    def samples_per_segment(self) -> int:
        """Frames in every segment (0: not a segmented plan)."""
        return self.kind.samples_per_segment(self)

    def describe(self) -> str:
        """In words, for cards and logs: ``2 fps``, ``5 s x 20 frames segments`` ..."""
        return self.kind.describe(self)

    def keeps(self, index: int, key_frame: bool) -> bool:
        """Whether a stream plan keeps the ``index``-th frame of its window (time plans: always)."""
        return self.uses_targets or self.kind.keeps(self, index, key_frame)

    def window(self, duration_s: float) -> tuple[float, float]:
        end = duration_s if self.end_s is None else min(self.end_s, duration_s)
        return self.start_s, end

    def targets(self, duration_s: float) -> list[Target]:
        """Sample times for the time-based modes, ascending (may repeat in segments mode)."""
        if not self.uses_targets:
            raise ValueError(f"mode {self.mode!r} has no target times")
        if not math.isfinite(duration_s):
            raise ValueError("duration unknown: time-based plans need a duration (use every_n / keyframes)")
        return list(self.iter_targets(duration_s))

    def iter_targets(self, duration_s: float) -> Iterator[Target]:
        """Like :meth:`targets`, lazily; ``fps`` mode also works on streams of unknown duration
        (live input): targets then run until the stream ends (or ``end_s``)."""
        return self.kind.iter_targets(self, duration_s)

    def sample_range(self, duration_s: float) -> tuple[int, int] | None:
        """How many samples a complete decode of a video of ``duration_s`` gives, as a range."""
        return self.kind.sample_range(self, duration_s) if math.isfinite(duration_s) and duration_s > 0 else None

    def expected_frames(self, duration_s: float, frames: int = 0, fps: float = 0.0) -> int | None:
        """How many frames this plan keeps of a video of ``duration_s`` (``frames`` declared by the
        container, ``fps`` its rate): exact for time-based plans, the container's count for
        ``every_n``, None where only decoding tells (key frames, unknown duration)."""
        if self.uses_targets:
            return len(self.targets(duration_s)) if math.isfinite(duration_s) else None
        return self.kind.expected(self, duration_s, frames, fps)

    def to_dict(self) -> dict:
        base = {"mode": self.mode, "short_side": self.short_side, "start_s": self.start_s, "end_s": self.end_s}
        return base | {name: getattr(self, name) for name in self.kind.fields}

    @classmethod
    def from_dict(cls, d: dict) -> SamplingPlan:
        d = dict(d)
        d.pop("kind", None)
        return cls(**d)
