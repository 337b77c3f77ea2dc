"""The layout of what a run of part of the chain keeps between its steps, one group per video
and kind in the work folder (``ArtifactStore``): sampled frames, clip tensors, embeddings. Only
this module names their arrays and attributes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from vid_assets.store.artifacts import ArtifactStore
from vid_assets.store.zarr_utils import ArrayAppender

FRAMES, CLIPS, EMBEDDINGS = "frames", "clips", "embeddings"
FRAME_CHUNK = 16
CLIP_CHUNK = 8


@dataclass
class KeptClips:
    """A video's kept clip tensors: ``pixels`` is read lazily, in slices."""

    pixels: object  # a zarr array [clips, T, crops, S, S, 3] uint8
    timestamps: np.ndarray  # [clips, 2]
    frame_times: np.ndarray  # [clips, T]
    segments: np.ndarray  # [clips], -1 outside segments plans


def write_frames(
    artifacts: ArtifactStore, key: str, frames: Iterable, segmented: bool, attrs: Callable[[], dict]
) -> list[int]:
    """Keep sampled frames (``DecodedFrame`` s: uint8 images, pts, segments) with ``attrs()``
    (asked once the frames are written: a decode's stats are known then); the images' shape."""
    with artifacts.writer(FRAMES, key) as g:
        images = ArrayAppender(g, "images", FRAME_CHUNK, np.uint8, level=1)
        pts, segments = [], []
        for frame in frames:
            images.add(frame.image)
            pts.append(frame.pts_s)
            segments.append(frame.segment)
        images.close()
        g.create_array("pts", data=np.asarray(pts, dtype=np.float64))
        if segmented:  # clips must not cross segments (clips.build.iter_clips)
            g.create_array("segments", data=np.asarray(segments, dtype=np.int32))
        shape = list(images.array.shape) if images.array is not None else [0]
        g.update_attributes({**attrs(), "frames": len(pts), "frame_shape": shape[1:]})
    return shape


def frames_attrs(artifacts: ArtifactStore, key: str) -> dict | None:
    """What ``write_frames`` was given (plan, source, decode stats ...), or None if none are kept."""
    return dict(artifacts.open(FRAMES, key).attrs) if artifacts.exists(FRAMES, key) else None


def read_frames(artifacts: ArtifactStore, key: str) -> Iterator[tuple[int, float, np.ndarray, int]]:
    """``(index, pts, image, segment)`` of each kept frame, a chunk of images at a time."""
    g = artifacts.open(FRAMES, key)
    images, pts = g["images"], g["pts"][...]
    segments = g["segments"][...] if "segments" in set(g.array_keys()) else np.full(len(pts), -1)
    for start in range(0, len(pts), FRAME_CHUNK):
        for i, img in enumerate(images[start : start + FRAME_CHUNK]):
            j = start + i
            yield j, float(pts[j]), img, int(segments[j])


def has_segments(artifacts: ArtifactStore, key: str) -> bool:
    return "segments" in set(artifacts.open(FRAMES, key).array_keys())


def write_clips(artifacts: ArtifactStore, key: str, clips: Iterable, segmented: bool, attrs: dict) -> list[int]:
    """Keep clip tensors (``Clip`` s) with their times; the pixels' array shape."""
    with artifacts.writer(CLIPS, key) as g:
        pixels = ArrayAppender(g, "pixels", CLIP_CHUNK, np.uint8, level=1)
        stamps, frame_times, segments = [], [], []
        for clip in clips:
            pixels.add(clip.pixels)
            stamps.append((clip.start_s, clip.end_s))
            frame_times.append(clip.frame_times)
            segments.append(clip.segment)
        pixels.close()
        g.create_array("timestamps", data=np.asarray(stamps, dtype=np.float64).reshape(-1, 2))
        g.create_array("frame_times", data=np.asarray(frame_times, dtype=np.float64))
        if segmented:  # which segment each clip cuts
            g.create_array("segments", data=np.asarray(segments, dtype=np.int32))
        g.update_attributes(attrs)
        return list(pixels.array.shape) if pixels.array is not None else [0]


def read_clips(artifacts: ArtifactStore, key: str) -> KeptClips:
    g = artifacts.open(CLIPS, key)
    stamps = g["timestamps"][...]
    segs = g["segments"][...] if "segments" in set(g.array_keys()) else np.full(len(stamps), -1, np.int32)
    return KeptClips(g["pixels"], stamps, g["frame_times"][...], segs)


def write_embeddings(artifacts: ArtifactStore, key: str, arrays: dict[str, np.ndarray], attrs: dict) -> None:
    with artifacts.writer(EMBEDDINGS, key) as g:
        for name, data in arrays.items():
            g.create_array(name, data=np.asarray(data))
        g.update_attributes(attrs)


def read_embeddings(artifacts: ArtifactStore, key: str) -> tuple[dict[str, np.ndarray], dict]:
    """The kept arrays (features, timestamps, frame_times, segments, top labels if any) and attrs."""
    g = artifacts.open(EMBEDDINGS, key)
    return {name: g[name][...] for name in g.array_keys()}, dict(g.attrs)
