"""The generic sampler under every plan: presentation-order frames with exact times, seeking when
a sample is far ahead, and the frame nearest each target time (see ``SamplingPlan``).

Time-based plans (``plan.uses_targets``) go through :func:`select_targets`; stream plans keep
frames as they come (:func:`stream_frames`, which asks the plan which frames it keeps).

**Only the frames a target can pick are decoded in full.** A 2-fps plan over 30-fps video picks one
frame in 15; the others are decoded only because later frames may reference them. FFmpeg can drop
the frames nothing references (``skip_frame = NONREF``: most B-frames of H.264/HEVC, the B-frames of
MPEG-4) before decoding them, so packets far from every target go in with that flag, and packets
near a target (within 1.5 frame durations) without it. That alone does not make it exact (a
variable-rate gap can put a target's nearest frame further away), so the reader counts the frames
that never came out, and the sampler checks, before it serves a target, that none was skipped
between the two frames it chooses from; if one was (or the stream's last frames were), it seeks
back and decodes that stretch in full, then drops again (up to ``MAX_FALLBACKS`` times a video).
The frames served are those a full decode serves (tested).

**Nor is a stretch before a key frame that presents at or before the next target.** No frame
before such a key frame can be the nearest one to the target, and decoding restarts cleanly there,
so the sampler jumps to it (a seek) instead of decoding its way up to it: a 1-fps plan over video
with a key frame every second decodes one frame per sample. The container's index (MP4/MOV: read
whole at open, and seeks land on it) says where key frames are; elsewhere (MKV, AVI, MPEG-PS/TS, a
pipe) and after a jump that landed late, nothing changes.
"""

from __future__ import annotations

import bisect
import heapq
import math
import time
from collections.abc import Callable

import av

from vid_assets.media.frames import DecodeStats, VideoDecodeError
from vid_assets.media.plan import SamplingPlan, Target

MAX_FALLBACKS = 4  # seeks back to decode in full, per video, before it is decoded in full to the end
JUMP_FORMATS = {"mp4"}  # demuxers whose index the jumps trust: whole at open, and their seeks land on it


class FrameReader:
    """Presentation-order frames with their pts in seconds; can seek. Enforces the time budget.

    With ``needed`` set (a pts in seconds -> whether a target may pick that frame), packets not
    needed are decoded with ``skip_frame = NONREF`` (see the module docstring); ``skipped_since``
    then counts the frames FFmpeg dropped between the last two frames returned.
    """

    def __init__(self, container, stream, desc: str, stats: DecodeStats, budget_s: float | None, started: float):
        self.container, self.stream, self.desc, self.stats = container, stream, desc, stats
        self.tb = stream.time_base
        self.start_pts = stream.start_time or 0
        self.budget_s, self.started = budget_s, started
        self.needed: Callable[[float], bool] | None = None
        self._sent_nonref: list[int] = []  # heap: pts of packets sent with NONREF whose frame is not out yet
        self.skipped_since = 0  # frames dropped by NONREF between the last two frames returned
        self._nonref = False  # the codec's skip_frame is NONREF now
        self._paused: Callable[[float], bool] | None = None  # ``needed`` during a fallback
        self.fallbacks = 0
        self._it = self._frames()
        self._keys: list[float] | None = None  # the index's key frames, decode time (s)
        # MP4/MOV only: MKV's index fills as it is read, MPEG-PS and AVI seeks land earlier (by file
        # position); off for the rest of a video once a jump lands late
        self.jumps_ok = bool(JUMP_FORMATS & set(container.format.name.split(",")))
        self.key_delay_s = 0.0  # the largest pts - dts of a key frame seen
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

    def _frames(self):
        """``container.decode(stream)``, deciding per packet whether its frame may be dropped."""
        cc = self.stream.codec_context
        for packet in self.container.demux(self.stream):
            if packet.is_keyframe and packet.pts is not None and packet.dts is not None:
                self.key_delay_s = max(self.key_delay_s, float((packet.pts - packet.dts) * self.tb))
            skip = self.needed is not None and packet.pts is not None and not self.needed(self._seconds(packet.pts))
            if skip != self._nonref:  # the codec keeps the flag across seeks: so does this
                cc.skip_frame, self._nonref = ("NONREF" if skip else "DEFAULT"), skip
            if skip:
                heapq.heappush(self._sent_nonref, packet.pts)
            yield from packet.decode()

    def _seconds(self, pts: int) -> float:
        return float((pts - self.start_pts) * self.tb)

    def key_presenting_by(self, t: float) -> float | None:
        """When the index's last key frame presenting by ``t`` does (None: none). The index holds
        decode times: a key frame presents the largest pts - dts seen on one later."""
        if not self.jumps_ok:
            return None
        if self._keys is None:  # read once, on first use
            self._keys = [self._seconds(e.timestamp) for e in self.stream.index_entries if e.is_keyframe]
        i = bisect.bisect_right(self._keys, t - self.key_delay_s) - 1
        return self._keys[i] + self.key_delay_s if i >= 0 else None

    def _settle(self, pts: int) -> None:
        """A frame with ``pts`` came out: packets sent before it with a smaller pts were dropped."""
        heap = self._sent_nonref
        while heap and heap[0] <= pts:
            if heapq.heappop(heap) < pts:
                self.skipped_since += 1
                self.stats.skipped += 1

    def decode_everything(self) -> None:
        """From the next packet on, decode every frame (the exactness fallback), until
        :meth:`resume_dropping`."""
        self._paused, self.needed = self.needed or self._paused, None
        self.fallbacks += 1

    def resume_dropping(self) -> None:
        """Drop unneeded frames again after a fallback; after ``MAX_FALLBACKS`` in one video (a gap
        at every sample), decoding everything costs less than seeking back each time."""
        if self._paused is not None and self.fallbacks < MAX_FALLBACKS:
            self.needed, self._paused = self._paused, None

    @property
    def dropped_at_end(self) -> int:
        """Frames dropped after the last frame returned (meaningful once the stream ended)."""
        return len(self._sent_nonref)

    def __next__(self) -> tuple[float, av.VideoFrame]:
        self.skipped_since = 0
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
            if self._sent_nonref:
                self._settle(frame.pts)
            if getattr(frame, "is_corrupt", False):
                self.stats.corrupt += 1
            pts_s = self._seconds(frame.pts)
            if frame.key_frame:
                if self.last_key_s is not None and pts_s > self.last_key_s:
                    gap = pts_s - self.last_key_s
                    self.gop_s = gap if self.gop_s is None else max(self.gop_s, gap)
                self.last_key_s = pts_s
            if pts_s <= self.last_pts_s:  # duplicate / out-of-order timestamps: keep time monotonic
                continue
            if self.step_s and self.last_pts_s > -math.inf:  # not across a seek
                holes = round((pts_s - self.last_pts_s) / self.step_s) - 1 - self.skipped_since
                self.stats.missing += max(holes, 0)
            self.last_pts_s = pts_s
            self.stats.end_pts_s = pts_s
            return pts_s, frame

    def seek(self, t: float) -> None:
        """Position before ``t``: the decoder restarts at the key frame at or before it."""
        target = int(t / self.tb) + self.start_pts
        self.container.seek(max(target, self.start_pts), stream=self.stream, backward=True, any_frame=False)
        self._it = self._frames()
        self._sent_nonref.clear()
        self.skipped_since = 0
        self.last_pts_s = -math.inf
        self.last_key_s = None  # key-frame spacing is only measured between consecutive key frames
        self.exhausted = False
        self.stats.seeks += 1


class _Walk:
    """The targets of one decode, in order, and what was last served (fps plans never serve a
    frame twice)."""

    def __init__(self, plan: SamplingPlan, duration: float) -> None:
        self._targets = plan.iter_targets(duration)  # lazy: unbounded for fps plans over live input
        self.target: Target | None = next(self._targets, None)
        self.previous: Target | None = None
        self.index = 0  # of ``target``
        self.dedup = not plan.kind.repeats
        self._last = -math.inf

    def serve(self, choice: tuple[float, av.VideoFrame]):
        """``(frame, pts, segment)`` for the current target, or None (already served); then the next target."""
        out = None
        if not (self.dedup and choice[0] == self._last):
            self._last = choice[0]
            out = choice[1], choice[0], self.target.segment
        self.previous, self.target, self.index = self.target, next(self._targets, None), self.index + 1
        return out


def select_targets(reader: FrameReader, plan: SamplingPlan, duration: float, frame_s: float, seek: str):
    """Yield ``(frame, pts, segment)`` per target: the frame *nearest* to each target time.

    Needs one frame of look-ahead (the last frame before ``t`` and the first at/after it; ties go to
    the later frame), which makes it exact for variable-frame-rate video without any tolerance.
    fps mode never yields the same frame twice; segments mode may (fixed F frames per segment).
    """
    walk = _Walk(plan, duration)
    prev: tuple[float, av.VideoFrame] | None = None  # newest frame before the current target
    current: tuple[float, av.VideoFrame] | None = None  # newest decoded frame
    seeked_for = -1  # never seek twice for the same target
    while walk.target is not None:
        t = walk.target.time_s
        if current is not None and current[0] >= t and reader.skipped_since:
            # a dropped frame lies between the two candidates: it may be the nearer one
            seeked_for, prev, current = walk.index, None, _seek_back_in_full(reader, t)
            if current is None:
                break
            continue
        if current is not None and current[0] >= t:
            near_prev = prev is not None and prev[0] < t and (t - prev[0]) < (current[0] - t)
            if out := walk.serve(prev if near_prev else current):
                yield out
            reader.resume_dropping()  # after a fallback: its target is served
            continue
        if seeked_for != walk.index and _should_seek(reader, current, t, frame_s, seek):
            seeked_for = walk.index
            prev, current = None, _seek_to(reader, t)
            if current is None:
                break
            continue
        try:
            nxt = next(reader)
        except StopIteration:
            if not reader.dropped_at_end or current is None:
                break
            # the last frames were dropped: what is served after the end must come from them
            seeked_for, prev, current = walk.index, None, _seek_back_in_full(reader, current[0])
            if current is None:
                break
            continue
        prev, current = current, nxt
    yield from _after_the_end(walk, plan, current, duration, frame_s)


def _seek_back_in_full(reader: FrameReader, t: float) -> tuple[float, av.VideoFrame] | None:
    """The exactness fallback: decode every frame from the key frame before ``t`` on."""
    reader.decode_everything()
    return _seek_to(reader, t)


def _seek_to(reader: FrameReader, t: float) -> tuple[float, av.VideoFrame] | None:
    """Seek before ``t`` and return the first frame there (None: the stream ended)."""
    reader.seek(t)
    current = None
    for attempt in range(3):
        try:
            current = next(reader)
        except StopIteration:
            return None
        if current[0] <= t:
            break
        # landed after the target (some HEVC seeks land late): go back further, and jump no more
        reader.jumps_ok = False
        reader.seek(max(0.0, t - max(reader.gop_s or 1.0, 1.0) * (2 + attempt)))
    return current


def _after_the_end(walk: _Walk, plan: SamplingPlan, current, duration: float, frame_s: float):
    """The stream ended before the remaining targets: a target within two frames of the last frame
    of a file is still on screen (serve it); segments pad the rest of their segment; otherwise stop
    (the caller's coverage check reports truncation). Live input has no duration to cut at: there,
    serve a target only when the last frame is the nearest one it could ever get (half a frame)."""
    slack = 2 * frame_s if math.isfinite(duration) else 0.5 * frame_s
    while walk.target is not None and current is not None:
        seg = walk.target.segment
        in_last = plan.segmented and walk.previous is not None and seg == walk.previous.segment
        if walk.target.time_s - current[0] > slack and not in_last:
            break
        if out := walk.serve(current):
            yield out


def stream_frames(reader: FrameReader, plan: SamplingPlan, start: float, end: float, tol: float):
    """Yield ``(frame, pts, -1)`` for the frames a stream plan keeps (every n-th, key frames) in
    ``[start, end)`` (``tol``: how early a frame may start and still count as in the window)."""
    n = 0
    for pts, frame in reader:
        if pts + tol < start:
            continue
        if pts >= end:
            return
        if plan.keeps(n, bool(frame.key_frame)):
            yield frame, pts, -1
        n += 1


def sample(
    reader: FrameReader,
    plan: SamplingPlan,
    duration: float,
    rate: float,
    seek: str,
    live: bool,
    skip_unneeded: bool = True,
):
    """``(frame, pts, segment)`` for every frame ``plan`` keeps, lazily (the first seek happens when
    iteration starts, inside the caller's error handling). ``skip_unneeded``: drop unreferenced
    frames no target can pick (module docstring); only where seeking back is possible."""
    finite = math.isfinite(duration)
    if not plan.uses_targets or live or not finite:
        seek = "never"
    start, end = plan.window(duration if finite else math.inf)
    if plan.uses_targets:
        if skip_unneeded and seek != "never":
            reader.needed = _near_a_target(sorted({tg.time_s for tg in plan.iter_targets(duration)}), 1.5 / rate)
        if start > 0 and seek != "never":
            reader.seek(start)
        yield from select_targets(reader, plan, duration, 1.0 / rate, seek)
        return
    if start > 0 and not live:
        reader.seek(start)
    yield from stream_frames(reader, plan, start, end, tol=min(0.5 / rate, 0.5 * plan.step_s))


def _near_a_target(times: list[float], reach: float) -> Callable[[float], bool]:
    """``pts_s -> bool``: whether a target time lies within ``reach`` seconds (``times`` sorted)."""

    def near(pts_s: float) -> bool:
        i = bisect.bisect_left(times, pts_s)
        return (i < len(times) and times[i] - pts_s <= reach) or (i > 0 and pts_s - times[i - 1] <= reach)

    return near


def _should_seek(reader: FrameReader, current, t: float, frame_s: float, seek: str) -> bool:
    if seek == "never":
        return False
    pos = current[0] if current is not None else max(reader.last_pts_s, 0.0)
    if seek == "always":
        return current is None or pos + frame_s < t
    key = reader.key_presenting_by(t) if reader.needed is not None else None
    if key is not None and key > pos + 2 * (frame_s + reader.key_delay_s):  # not sent yet: jump there,
        reader.stats.jumps += 1  # as nothing before that key frame can be picked
        return True
    # auto: only when at least two GOPs would be decoded for nothing
    gop = reader.gop_s if reader.gop_s is not None else 10.0
    last_key = reader.last_key_s if reader.last_key_s is not None else pos
    return t > max(pos, last_key) + 2.0 * gop and t - pos > 1.0
