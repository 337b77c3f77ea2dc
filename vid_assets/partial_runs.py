"""Runs of part of the chain: what they keep between steps, and feeding it back to the engine.

The whole chain (decode -> clips -> embeddings -> store) runs in :mod:`vid_assets.engine` without
touching disk. A run of part of it keeps its output for a later run: ``decode_video`` /
``build_clips`` keep frames and clips, ``artifact_feed`` feeds kept clips (or frames) back to the
engine, ``save_result`` / ``load_result`` keep embeddings for a store-only run. Where they are
kept, and how, is ``store/kept.py``'s.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from vid_assets.clips import ClipSpec, iter_clips
from vid_assets.clips.stream import ClipBatch
from vid_assets.engine import VideoResult
from vid_assets.extractors import Extractor
from vid_assets.media import DecodedFrame, SamplingPlan, VideoRef, iter_frames, probe
from vid_assets.media.contact import ContactSheet
from vid_assets.media.decode import RGB_RESIZE, DecodeStats
from vid_assets.store import ArtifactStore, kept
from vid_assets.store.kept import CLIPS, EMBEDDINGS, FRAMES

__all__ = [
    "CLIPS",
    "EMBEDDINGS",
    "FRAMES",
    "artifact_feed",
    "build_clips",
    "decode_video",
    "load_result",
    "save_result",
]


# -- stage 1: decode ------------------------------------------------------------------------------
def decode_video(ref: VideoRef, plan: SamplingPlan, artifacts: ArtifactStore, time_budget_s: float = 600) -> dict:
    """Sample frames from the source and keep them (uint8 images + pts); what the decode did."""
    t0 = time.perf_counter()
    info = probe(ref.uri)
    stats, sheet = DecodeStats(), ContactSheet()

    def noted(frames):
        for frame in frames:
            sheet.add(frame.image, frame.pts_s)
            yield frame

    frames = noted(iter_frames(ref.uri, plan, time_budget_s=time_budget_s, stats=stats))
    attrs = {"source": ref.to_dict(), "info": info.to_dict(), "plan": plan.to_dict(), "resize": RGB_RESIZE}
    shape = kept.write_frames(artifacts, ref.key, frames, plan.segmented, lambda: attrs | {"decode": stats.to_dict()})
    jpeg = sheet.jpeg()
    contact = artifacts.root / "contact_sheets" / f"{ref.key}.jpg"
    if jpeg:
        contact.parent.mkdir(parents=True, exist_ok=True)
        contact.write_bytes(jpeg)
    took = time.perf_counter() - t0
    return {
        "contact_sheet_path": str(contact) if jpeg else "",
        "frames": shape[0],
        "frame_shape": shape[1:],
        "duration_s": info.duration_s,
        "source_fps": info.avg_fps,
        "codec": info.codec,
        "resolution": f"{info.width}x{info.height}",
        "frames_decoded": stats.decoded,
        "frames_skipped": stats.skipped,
        "seeks": stats.seeks,
        "key_frame_jumps": stats.jumps,
        "corrupt_frames": stats.corrupt,
        "missing_frames": stats.missing,
        "seconds": took,
        "decode_fps": shape[0] / max(took, 1e-9),
    }


def read_frames(artifacts: ArtifactStore, key: str) -> Iterator[DecodedFrame]:
    for j, pts, image, segment in kept.read_frames(artifacts, key):
        yield DecodedFrame(index=j, pts_s=pts, image=image, segment=segment)


def _kept_step_s(artifacts: ArtifactStore, key: str) -> float:
    return SamplingPlan.from_dict(kept.frames_attrs(artifacts, key)["plan"]).step_s


# -- stage 2: clips -------------------------------------------------------------------------------
def build_clips(key: str, spec: ClipSpec, artifacts: ArtifactStore) -> dict:
    """Group kept frames into cropped clips and keep those."""
    t0 = time.perf_counter()
    step_s = _kept_step_s(artifacts, key)
    clips = iter_clips(read_frames(artifacts, key), spec, step_s)
    attrs = {"clip": spec.to_dict(), "step_s": step_s}
    shape = kept.write_clips(artifacts, key, clips, kept.has_segments(artifacts, key), attrs)
    return {"clips": shape[0], "clip_tensor_shape": shape, "seconds": time.perf_counter() - t0}


# -- feeding kept intermediates back to the engine -------------------------------------------------
def has_clips_or_frames(artifacts: ArtifactStore, key: str) -> bool:
    return artifacts.exists(CLIPS, key) or artifacts.exists(FRAMES, key)


def _kept_summary(artifacts: ArtifactStore, key: str) -> dict | None:
    a = kept.frames_attrs(artifacts, key)
    if a is None:
        return None
    return {
        "info": a["info"],
        "decode": a["decode"],
        "frames": a.get("frames", 0),
        "frame_shape": a.get("frame_shape", []),
    }


def _kept_blocks(artifacts: ArtifactStore, key: str, spec: ClipSpec, batch_clips: int):
    """``(stamps, frame times, segments, blocks of (first clip, pixels))`` from kept clips, or
    from kept frames cut into clips now."""
    if artifacts.exists(CLIPS, key):
        c = kept.read_clips(artifacts, key)
        blocks = ((s, c.pixels[s : s + batch_clips]) for s in range(0, len(c.timestamps), batch_clips))
        return c.timestamps, c.frame_times, c.segments, blocks
    clips = list(iter_clips(read_frames(artifacts, key), spec, _kept_step_s(artifacts, key)))
    stamps = np.asarray([(c.start_s, c.end_s) for c in clips], dtype=np.float64).reshape(-1, 2)
    times = np.asarray([c.frame_times for c in clips], dtype=np.float64).reshape(len(clips), -1)
    segs = np.asarray([c.segment for c in clips], dtype=np.int32)
    blocks = ((s, np.stack([c.pixels for c in clips[s : s + batch_clips]])) for s in range(0, len(clips), batch_clips))
    return stamps, times, segs, blocks


def artifact_feed(
    jobs: Sequence[tuple[int, str]], artifacts: ArtifactStore, spec: ClipSpec, batch_clips: int
) -> Iterator[ClipBatch]:
    """The engine's input from kept intermediates: ``(index, key)`` pairs, each video's kept clip
    tensors (or its kept frames cut into clips now), in batches of ``batch_clips``."""
    for index, key in jobs:
        stamps, times, segs, blocks = _kept_blocks(artifacts, key, spec, batch_clips)
        summary = _kept_summary(artifacts, key)
        sent = False
        for start, block in blocks:
            end = start + len(block)
            yield ClipBatch(
                index,
                start,
                torch.from_numpy(np.ascontiguousarray(block)),
                stamps[start:end],
                end == len(stamps),
                frame_times=times[start:end],
                segments=segs[start:end],
                summary=summary if end == len(stamps) else None,
            )
            sent = True
        if not sent:
            yield ClipBatch(index, 0, torch.empty(0, dtype=torch.uint8), np.zeros((0, 2)), True, summary=summary)


# -- embeddings kept for a store-only run ---------------------------------------------------------
def save_result(artifacts: ArtifactStore, key: str, result: VideoResult, extractor: Extractor) -> None:
    """Keep one engine result (float32 features: storing it later encodes exactly what a run of
    the whole chain would have)."""
    features = result.features if result.features is not None else np.zeros((0, 1, extractor.dim), np.float32)
    arrays = {"features": features, "timestamps": result.timestamps, "frame_times": result.frame_times}
    arrays["segments"] = result.segments
    if result.top_labels is not None:
        arrays["top_labels"], arrays["top_scores"] = result.top_labels, result.top_scores
    summary = {k: v for k, v in (result.summary or {}).items() if k != "contact_sheet_jpeg"}
    attrs = {"summary": summary, "seconds": result.seconds, "extractor": extractor.describe()}
    kept.write_embeddings(artifacts, key, arrays, attrs)


def load_result(artifacts: ArtifactStore, key: str) -> tuple[VideoResult, dict]:
    """A kept result and the ``describe()`` of the extractor that made it."""
    arrays, attrs = kept.read_embeddings(artifacts, key)
    r = VideoResult(
        index=-1,
        features=arrays["features"],
        timestamps=arrays["timestamps"],
        frame_times=arrays["frame_times"],
        segments=arrays["segments"],
        summary=dict(attrs["summary"]),
        seconds=float(attrs["seconds"]),
    )
    if "top_labels" in arrays:
        r.top_labels, r.top_scores = arrays["top_labels"], arrays["top_scores"]
    return r, dict(attrs["extractor"])
