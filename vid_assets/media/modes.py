"""Sampling modes as data: what each ``SamplingPlan.mode`` means.

A mode answers the questions every caller used to branch on: which times to sample (time modes,
served by the frame nearest each time) or which frames of the stream to keep (stream modes), how
far apart kept frames are, how many samples a video gives, whether frames carry a segment, and
how to say it in words. ``SamplingPlan`` asks its mode; the decoder, the clip cutter, the checks,
the service and the Hub card ask the plan.

A new mode is one :class:`Mode` subclass registered with :func:`register_mode` (here for the
built-in ones, or in any module a deployment imports), plus its tests; see docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from vid_assets.media.plan import SamplingPlan


@dataclass(frozen=True)
class Target:
    time_s: float
    segment: int = -1  # segment index (segments mode), else -1


class Mode:
    """The behaviour shared by default: a stream mode that keeps every frame."""

    name = ""
    fields: tuple[str, ...] = ()  # the plan fields this mode reads (stored with the features)
    uses_targets = False  # time mode: ``targets`` says when; else ``keeps`` says which frames
    segmented = False  # frames carry their segment; clips never cross one
    repeats = False  # a frame may serve two targets (fixed frames per segment)
    needs_duration = False  # cannot sample a stream of unknown length
    key_frames_only = False  # the decoder may skip non-key frames

    def check(self, plan: SamplingPlan) -> None:
        """Raise ``ValueError`` for fields this mode cannot use."""

    def step_s(self, plan: SamplingPlan) -> float:
        """Nominal spacing of kept frames (the span one kept frame stands for)."""
        return 1.0 / plan.fps

    def targets(self, plan: SamplingPlan, start: float, end: float) -> list[Target]:
        """Time modes: the sample times in ``[start, end)``, ascending."""
        raise ValueError(f"mode {self.name!r} has no target times")

    def iter_targets(self, plan: SamplingPlan, duration_s: float) -> Iterator[Target]:
        """Lazily; a mode that can sample a stream of unknown duration overrides this."""
        if not math.isfinite(duration_s):
            raise ValueError("duration unknown: time-based plans need a duration (use every_n / keyframes)")
        start, end = plan.window(duration_s)
        yield from (self.targets(plan, start, end) if end > start else [])

    def keeps(self, plan: SamplingPlan, index: int, key_frame: bool) -> bool:
        """Stream modes: whether the ``index``-th frame of the window is kept."""
        return True

    def expected(self, plan: SamplingPlan, duration_s: float, frames: int, fps: float) -> int | None:
        """Stream modes: how many frames a video keeps, where the container says (None: unknown)."""
        return None

    def sample_range(self, plan: SamplingPlan, duration_s: float) -> tuple[int, int] | None:
        """How many samples a complete decode gives, as a range (the stored video's checks); None
        where only decoding tells. Time modes: the targets, a few less allowed where a frame is
        never served twice (variable frame rates, streams a little shorter than declared)."""
        if not self.uses_targets:
            return None
        n = len(plan.targets(duration_s))
        return (n, n) if self.repeats else (max(1, n - 2), n)

    def samples_per_segment(self, plan: SamplingPlan) -> int:
        return 0

    def describe(self, plan: SamplingPlan) -> str:
        return self.name


class Fps(Mode):
    name, fields, uses_targets = "fps", ("fps",), True

    def targets(self, plan, start, end):
        n = max(1, math.ceil((end - start) * plan.fps - 1e-9))
        return [Target(start + k / plan.fps) for k in range(n)]

    def iter_targets(self, plan, duration_s):
        if math.isfinite(duration_s):
            yield from super().iter_targets(plan, duration_s)
            return
        k = 0  # live input: targets run until the stream ends (or end_s)
        while plan.end_s is None or plan.start_s + k / plan.fps < plan.end_s:
            yield Target(plan.start_s + k / plan.fps)
            k += 1

    def describe(self, plan):
        return f"{plan.fps:g} fps"


class EveryN(Mode):
    name, fields = "every_n", ("every_n_frames",)

    def keeps(self, plan, index, key_frame):
        return index % plan.every_n_frames == 0

    def expected(self, plan, duration_s, frames, fps):
        trimmed = plan.start_s > 0 or plan.end_s is not None
        total = 0 if trimmed else frames  # the container's count covers the whole video only
        if not total and fps and math.isfinite(duration_s):
            start, end = plan.window(duration_s)
            total = round(max(0.0, end - start) * fps)
        return math.ceil(total / plan.every_n_frames) if total else None

    def describe(self, plan):
        return f"every {plan.every_n_frames} frames"


class Segments(Mode):
    name, fields = "segments", ("segment_s", "frames_per_segment", "max_segments")
    uses_targets = segmented = repeats = needs_duration = True

    def step_s(self, plan):
        return plan.segment_s / plan.frames_per_segment

    def targets(self, plan, start, end):
        span = end - start
        n_seg = max(1, math.floor(span / plan.segment_s + 1e-9))
        seg_len = min(plan.segment_s, span)  # shorter only when the video is shorter than one segment
        chosen = range(n_seg)
        if plan.max_segments is not None and n_seg > plan.max_segments:
            chosen = np.unique(np.linspace(0, n_seg - 1, plan.max_segments).round().astype(int)).tolist()
        step = seg_len / plan.frames_per_segment
        return [
            Target(start + i * plan.segment_s + j * step, segment=i)
            for i in chosen
            for j in range(plan.frames_per_segment)
        ]

    def samples_per_segment(self, plan):
        return plan.frames_per_segment

    def describe(self, plan):
        return f"{plan.segment_s:g} s x {plan.frames_per_segment} frames segments"


class Keyframes(Mode):
    name, key_frames_only = "keyframes", True

    def keeps(self, plan, index, key_frame):
        return key_frame


MODES: dict[str, Mode] = {}


def segmented(mode: str) -> bool:
    """Whether plans of ``mode`` (a name, as stored or configured) cut frames into segments; an
    unknown name is not (the plan itself reports it as unknown)."""
    return getattr(MODES.get(mode), "segmented", False)


def register_mode(mode: Mode) -> Mode:
    """Make ``mode.name`` a plan mode everywhere a plan is read: YAML sets, the sampling
    resource, ``vid-assets extract --mode``, ``vid_assets.extract(mode=...)``, the service."""
    MODES[mode.name] = mode
    return mode


for _mode in (Fps(), EveryN(), Segments(), Keyframes()):
    register_mode(_mode)
