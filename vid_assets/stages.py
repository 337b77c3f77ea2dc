"""What a run of part of the chain keeps between its steps, and how a video reaches the store.

The whole chain (decode -> clips -> embeddings -> store) runs in :mod:`vid_assets.engine` without
touching disk. The functions here serve runs of part of it: ``decode_video`` / ``build_clips``
keep frames and clips for a later run, ``artifact_feed`` feeds kept clips (or frames) back to the
engine, ``save_result`` / ``load_result`` keep embeddings for a store-only run, and
``store_result`` writes one engine result into the feature store with its provenance.
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
from vid_assets.extractors.text import DEFAULT_TEXT_MODEL
from vid_assets.fit import PipelineConfig
from vid_assets.media import DecodedFrame, SamplingPlan, VideoRef, iter_frames, probe
from vid_assets.media.contact import ContactSheet
from vid_assets.media.decode import RGB_RESIZE, DecodeStats
from vid_assets.media.identity import name_text
from vid_assets.store import ArrayAppender, ArtifactStore, FeatureStore

FRAMES, CLIPS, EMBEDDINGS = "frames", "clips", "embeddings"
FRAME_CHUNK = 16
CLIP_CHUNK = 8


# -- stage 1: decode ------------------------------------------------------------------------------
def decode_video(ref: VideoRef, plan: SamplingPlan, artifacts: ArtifactStore, time_budget_s: float = 600) -> dict:
    """Sample frames from the source into ``frames/<key>.zarr`` (uint8 images + pts)."""
    t0 = time.perf_counter()
    info = probe(ref.uri)
    with artifacts.writer(FRAMES, ref.key) as g:
        images = ArrayAppender(g, "images", FRAME_CHUNK, np.uint8, level=1)
        pts, segments = [], []
        stats = DecodeStats()
        sheet = ContactSheet()
        for frame in iter_frames(ref.uri, plan, time_budget_s=time_budget_s, stats=stats):
            images.add(frame.image)
            pts.append(frame.pts_s)
            segments.append(frame.segment)
            sheet.add(frame.image, frame.pts_s)
        images.close()
        g.create_array("pts", data=np.asarray(pts, dtype=np.float64))
        if plan.segmented:  # clips must not cross segments (clips.build.iter_clips)
            g.create_array("segments", data=np.asarray(segments, dtype=np.int32))
        g.update_attributes(
            {
                "source": ref.to_dict(),
                "info": info.to_dict(),
                "plan": plan.to_dict(),
                "decode": stats.to_dict(),
                "resize": RGB_RESIZE,
                "frames": len(pts),
                "frame_shape": list(images.array.shape[1:]) if images.array is not None else [],
            }
        )
        shape = list(images.array.shape)
    jpeg = sheet.jpeg()
    if jpeg:
        contact = artifacts.root / "contact_sheets" / f"{ref.key}.jpg"
        contact.parent.mkdir(parents=True, exist_ok=True)
        contact.write_bytes(jpeg)
    return {
        "contact_sheet_path": str(contact) if jpeg else "",
        "frames": len(pts),
        "frame_shape": shape[1:],
        "duration_s": info.duration_s,
        "source_fps": info.avg_fps,
        "codec": info.codec,
        "resolution": f"{info.width}x{info.height}",
        "frames_decoded": stats.decoded,
        "seeks": stats.seeks,
        "corrupt_frames": stats.corrupt,
        "missing_frames": stats.missing,
        "seconds": time.perf_counter() - t0,
        "decode_fps": len(pts) / max(time.perf_counter() - t0, 1e-9),
    }


def read_frames(artifacts: ArtifactStore, key: str) -> Iterator[DecodedFrame]:
    g = artifacts.open(FRAMES, key)
    images, pts = g["images"], g["pts"][...]
    segments = g["segments"][...] if "segments" in set(g.array_keys()) else np.full(len(pts), -1)
    for start in range(0, len(pts), FRAME_CHUNK):
        block = images[start : start + FRAME_CHUNK]
        for i, img in enumerate(block):
            j = start + i
            yield DecodedFrame(index=j, pts_s=float(pts[j]), image=img, segment=int(segments[j]))


# -- stage 2: clips -------------------------------------------------------------------------------
def build_clips(key: str, spec: ClipSpec, artifacts: ArtifactStore) -> dict:
    """Group stored frames into cropped clips in ``clips/<key>.zarr``."""
    t0 = time.perf_counter()
    frames_group = artifacts.open(FRAMES, key)
    step_s = SamplingPlan.from_dict(frames_group.attrs["plan"]).step_s
    with artifacts.writer(CLIPS, key) as g:
        pixels = ArrayAppender(g, "pixels", CLIP_CHUNK, np.uint8, level=1)
        stamps, frame_times, segments = [], [], []
        for clip in iter_clips(read_frames(artifacts, key), spec, step_s):
            pixels.add(clip.pixels)
            stamps.append((clip.start_s, clip.end_s))
            frame_times.append(clip.frame_times)
            segments.append(clip.segment)
        pixels.close()
        g.create_array("timestamps", data=np.asarray(stamps, dtype=np.float64).reshape(-1, 2))
        g.create_array("frame_times", data=np.asarray(frame_times, dtype=np.float64))
        if "segments" in set(frames_group.array_keys()):  # a segments plan: which segment each clip cuts
            g.create_array("segments", data=np.asarray(segments, dtype=np.int32))
        g.update_attributes({"clip": spec.to_dict(), "step_s": step_s})
        shape = list(pixels.array.shape)
    return {"clips": len(stamps), "clip_tensor_shape": shape, "seconds": time.perf_counter() - t0}


# -- feeding kept intermediates back to the engine -------------------------------------------------
def has_clips_or_frames(artifacts: ArtifactStore, key: str) -> bool:
    return artifacts.exists(CLIPS, key) or artifacts.exists(FRAMES, key)


def _kept_summary(artifacts: ArtifactStore, key: str) -> dict | None:
    if not artifacts.exists(FRAMES, key):
        return None
    a = artifacts.open(FRAMES, key).attrs
    return {
        "info": a["info"],
        "decode": a["decode"],
        "frames": a.get("frames", 0),
        "frame_shape": a.get("frame_shape", []),
    }


def artifact_feed(
    jobs: Sequence[tuple[int, str]], artifacts: ArtifactStore, spec: ClipSpec, batch_clips: int
) -> Iterator[ClipBatch]:
    """The engine's input from kept intermediates: ``(index, key)`` pairs, each video's kept clip
    tensors (or its kept frames cut into clips now), in batches of ``batch_clips``."""
    for index, key in jobs:
        if artifacts.exists(CLIPS, key):
            g = artifacts.open(CLIPS, key)
            pixels, stamps, times = g["pixels"], g["timestamps"][...], g["frame_times"][...]
            segs = g["segments"][...] if "segments" in set(g.array_keys()) else np.full(len(stamps), -1, np.int32)
            blocks = ((s, pixels[s : s + batch_clips]) for s in range(0, len(stamps), batch_clips))
        else:
            frames = artifacts.open(FRAMES, key)
            step_s = SamplingPlan.from_dict(frames.attrs["plan"]).step_s
            clips = list(iter_clips(read_frames(artifacts, key), spec, step_s))
            stamps = np.asarray([(c.start_s, c.end_s) for c in clips], dtype=np.float64).reshape(-1, 2)
            times = np.asarray([c.frame_times for c in clips], dtype=np.float64).reshape(len(clips), -1)
            segs = np.asarray([c.segment for c in clips], dtype=np.int32)
            blocks = (
                (s, np.stack([c.pixels for c in clips[s : s + batch_clips]])) for s in range(0, len(clips), batch_clips)
            )
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
    with artifacts.writer(EMBEDDINGS, key) as g:
        arrays = {
            "features": result.features if result.features is not None else np.zeros((0, 1, extractor.dim), np.float32),
            "timestamps": result.timestamps,
            "frame_times": result.frame_times,
            "segments": result.segments,
        }
        if result.top_labels is not None:
            arrays["top_labels"], arrays["top_scores"] = result.top_labels, result.top_scores
        for name, data in arrays.items():
            g.create_array(name, data=np.asarray(data))
        summary = {k: v for k, v in (result.summary or {}).items() if k != "contact_sheet_jpeg"}
        g.update_attributes({"summary": summary, "seconds": result.seconds, "extractor": extractor.describe()})


def load_result(artifacts: ArtifactStore, key: str) -> tuple[VideoResult, dict]:
    """A kept result and the ``describe()`` of the extractor that made it."""
    g = artifacts.open(EMBEDDINGS, key)
    members = set(g.array_keys())
    r = VideoResult(
        index=-1,
        features=g["features"][...],
        timestamps=g["timestamps"][...],
        frame_times=g["frame_times"][...],
        segments=g["segments"][...],
        summary=dict(g.attrs["summary"]),
        seconds=float(g.attrs["seconds"]),
    )
    if "top_labels" in members:
        r.top_labels, r.top_scores = g["top_labels"][...], g["top_scores"][...]
    return r, dict(g.attrs["extractor"])


# -- the store ------------------------------------------------------------------------------------
def decode_meta(summary: dict | None, seconds: float | None = None) -> dict:
    """A video's decode, as the ``decoded_frames`` asset reports it."""
    if not summary:
        return {}
    info, stats = summary["info"], summary["decode"]
    took = stats.get("seconds", 0.0) if seconds is None else seconds
    return {
        "frames": summary.get("frames", 0),
        "frame_shape": summary.get("frame_shape", []),
        "duration_s": info["duration_s"],
        "source_fps": info["avg_fps"],
        "codec": info["codec"],
        "resolution": f"{info['width']}x{info['height']}",
        "frames_decoded": stats["decoded"],
        "seeks": stats["seeks"],
        "corrupt_frames": stats["corrupt"],
        "missing_frames": stats["missing"],
        "seconds": took,
        "decode_fps": summary.get("frames", 0) / max(took, 1e-9),
    }


def store_result(
    ref: VideoRef,
    result: VideoResult,
    store: FeatureStore,
    extractor_info: dict,
    config: PipelineConfig,
    *,
    labels: list[str] | None = None,
    text_model: str = DEFAULT_TEXT_MODEL,
) -> dict:
    """Publish one video's features + timestamps + provenance into the feature store, atomically.

    ``labels``: the model's own class names when its label set is not a named one (kept once in
    the store, not in every video). A video registered with a caption gets its text embedding."""
    t0 = time.perf_counter()
    info = (result.summary or {}).get("info", {})
    label_set = extractor_info.get("label_set")
    attrs = {
        **name_text(ref.uri),  # valid UTF-8 text (+ the exact bytes of a non-UTF-8 name)
        "user_id": name_text(ref.user_id)["source"],  # the user's own name for it (exports use it)
        "content_hash": ref.content_hash,
        "size_bytes": ref.size,
        "duration_s": info.get("duration_s"),
        "video_info": info,
        "sampling_plan": config.plan.to_dict(),
        "frame_resize": RGB_RESIZE,
        "clip_spec": config.clip.to_dict(),
        "extractor": extractor_info["id"],
        "extractor_config": extractor_info,
        "label_set": label_set,
    }
    caption_embedding = _caption_embedding(ref, text_model, attrs)
    if label_set and labels:
        store.save_label_set(label_set, labels)
    features = result.features if result.features is not None else np.zeros((0, 1, extractor_info.get("dim", 1)))
    path = store.write_video(
        ref.key,
        features=features,
        timestamps=result.timestamps,
        frame_times=result.frame_times.reshape(len(result.timestamps), -1),
        attrs=attrs,
        top_labels=result.top_labels,
        top_scores=result.top_scores,
        caption_embedding=caption_embedding,
        segments=result.segments if config.plan.segmented else None,
    )
    meta = {
        "clips": int(features.shape[0]),
        "feature_shape": list(features.shape),
        "store_path": str(path),
        "seconds": time.perf_counter() - t0,
    }
    if label_set and result.top_labels is not None and len(result.top_labels):
        meta["first_clip_top1"] = store.label_names(label_set)[int(result.top_labels[0, 0, 0])]
    return meta


def _caption_embedding(ref: VideoRef, text_model: str, attrs: dict) -> np.ndarray | None:
    """The caption's text embedding (float16), noting the caption and the text model in ``attrs``."""
    if not ref.caption:
        return None
    from vid_assets.extractors.text import get_text_embedder

    embedder = get_text_embedder(text_model)
    attrs["caption"], attrs["text_model"] = ref.caption, embedder.describe()
    return embedder.embed([ref.caption])[0].astype(np.float16)
