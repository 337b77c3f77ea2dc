"""The four stages of the per-video pipeline as plain functions over the artifact store.

Dagster assets (``pipeline/assets.py``) are thin wrappers around these; the in-memory path used by
``iter_clip_features`` (demo checks, the prediction service) chains the very same generators
(``iter_frames`` -> ``iter_clips`` -> ``embed_clips``) without touching disk.
Each stage streams: memory is bounded by a chunk of frames / a batch of clips, not by video length.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from vid_assets.clips import Clip, ClipSpec, iter_clips
from vid_assets.extractors import ClipFeatures, Extractor, embed_clips
from vid_assets.extractors.labels import label_names
from vid_assets.media import DecodedFrame, SamplingPlan, VideoRef, iter_frames, probe
from vid_assets.store import ArrayAppender, ArtifactStore, FeatureStore

FRAMES, CLIPS, EMBEDDINGS = "frames", "clips", "embeddings"
FRAME_CHUNK = 16
CLIP_CHUNK = 8


@dataclass(frozen=True)
class PipelineConfig:
    plan: SamplingPlan = field(default_factory=SamplingPlan)
    clip: ClipSpec = field(default_factory=ClipSpec)
    top_k: int = 5


# -- stage 1: decode ------------------------------------------------------------------------------
def decode_video(
    ref: VideoRef, plan: SamplingPlan, artifacts: ArtifactStore, time_budget_s: float = 600
) -> dict:
    """Sample frames from the source into ``frames/<key>.zarr`` (uint8 images + pts)."""
    t0 = time.perf_counter()
    info = probe(ref.uri)
    with artifacts.writer(FRAMES, ref.key) as g:
        images = ArrayAppender(g, "images", FRAME_CHUNK, np.uint8, level=1)
        pts = []
        for frame in iter_frames(ref.uri, plan, time_budget_s=time_budget_s):
            images.add(frame.image)
            pts.append(frame.pts_s)
        images.close()
        g.create_array("pts", data=np.asarray(pts, dtype=np.float64))
        g.attrs.update({"source": ref.to_dict(), "info": info.to_dict(), "plan": plan.to_dict()})
        shape = list(images.array.shape)
    return {
        "frames": len(pts),
        "frame_shape": shape[1:],
        "duration_s": info.duration_s,
        "source_fps": info.avg_fps,
        "codec": info.codec,
        "resolution": f"{info.width}x{info.height}",
        "seconds": time.perf_counter() - t0,
        "decode_fps": len(pts) / max(time.perf_counter() - t0, 1e-9),
    }


def read_frames(artifacts: ArtifactStore, key: str) -> Iterator[DecodedFrame]:
    g = artifacts.open(FRAMES, key)
    images, pts = g["images"], g["pts"][...]
    for start in range(0, len(pts), FRAME_CHUNK):
        block = images[start : start + FRAME_CHUNK]
        for i, img in enumerate(block):
            yield DecodedFrame(index=start + i, pts_s=float(pts[start + i]), image=img)


# -- stage 2: clips -------------------------------------------------------------------------------
def build_clips(key: str, spec: ClipSpec, artifacts: ArtifactStore) -> dict:
    """Group stored frames into cropped clips in ``clips/<key>.zarr``."""
    t0 = time.perf_counter()
    frames_group = artifacts.open(FRAMES, key)
    step_s = 1.0 / float(frames_group.attrs["plan"]["fps"])
    with artifacts.writer(CLIPS, key) as g:
        pixels = ArrayAppender(g, "pixels", CLIP_CHUNK, np.uint8, level=1)
        stamps, frame_times = [], []
        for clip in iter_clips(read_frames(artifacts, key), spec, step_s):
            pixels.add(clip.pixels)
            stamps.append((clip.start_s, clip.end_s))
            frame_times.append(clip.frame_times)
        pixels.close()
        g.create_array("timestamps", data=np.asarray(stamps, dtype=np.float64).reshape(-1, 2))
        g.create_array("frame_times", data=np.asarray(frame_times, dtype=np.float64))
        g.attrs.update({"clip": spec.to_dict(), "step_s": step_s})
        shape = list(pixels.array.shape)
    return {"clips": len(stamps), "clip_tensor_shape": shape, "seconds": time.perf_counter() - t0}


def read_clip_batches(artifacts: ArtifactStore, key: str, batch: int) -> Iterator[np.ndarray]:
    pixels = artifacts.open(CLIPS, key)["pixels"]
    for start in range(0, pixels.shape[0], batch):
        yield pixels[start : start + batch]


# -- stage 3: embeddings --------------------------------------------------------------------------
def _top_k(out: ClipFeatures, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    if out.logits is None:
        return None
    b, c, n = out.logits.shape
    import torch

    probs = torch.softmax(torch.from_numpy(out.logits.reshape(b * c, n)), dim=-1)
    scores, idx = probs.topk(min(k, n), dim=-1)
    return idx.numpy().reshape(b, c, -1), scores.numpy().reshape(b, c, -1)


def embed_video(key: str, extractor: Extractor, artifacts: ArtifactStore, top_k: int = 5) -> dict:
    """Run the extractor over every clip batch into ``embeddings/<key>.zarr`` (float16)."""
    t0 = time.perf_counter()
    clip_batch = max(1, extractor.batch_size // max(1, _frames_per_clip(artifacts, key)))
    with artifacts.writer(EMBEDDINGS, key) as g:
        feats = ArrayAppender(g, "features", 256, np.float16)
        labels = ArrayAppender(g, "top_labels", 256, np.int16)
        scores = ArrayAppender(g, "top_scores", 256, np.float16)
        n_clips = 0
        for batch in read_clip_batches(artifacts, key, clip_batch):
            out = embed_clips(extractor, batch)
            top = _top_k(out, top_k)
            for i in range(len(batch)):
                feats.add(out.features[i])
                if top is not None:
                    labels.add(top[0][i])
                    scores.add(top[1][i])
            n_clips += len(batch)
        feats.close()
        labels.close()
        scores.close()
        g.attrs.update({"extractor": extractor.describe()})
        shape = list(feats.array.shape) if feats.array is not None else [0]
    seconds = time.perf_counter() - t0
    return {
        "clips": n_clips,
        "feature_shape": shape,
        "extractor": extractor.id,
        "device": str(extractor.device),
        "seconds": seconds,
        "clips_per_s": n_clips / max(seconds, 1e-9),
    }


def _frames_per_clip(artifacts: ArtifactStore, key: str) -> int:
    shape = artifacts.open(CLIPS, key)["pixels"].shape
    return int(shape[1] * shape[2])


# -- stage 4: store -------------------------------------------------------------------------------
def store_video(key: str, artifacts: ArtifactStore, store: FeatureStore) -> dict:
    """Publish one video's features + timestamps + provenance into the feature store, atomically."""
    t0 = time.perf_counter()
    frames_g, clips_g, emb_g = (artifacts.open(a, key) for a in (FRAMES, CLIPS, EMBEDDINGS))
    emb_members = set(emb_g.array_keys())
    features = emb_g["features"][...]
    attrs = {
        "source": frames_g.attrs["source"]["uri"],
        "content_hash": frames_g.attrs["source"]["content_hash"],
        "size_bytes": frames_g.attrs["source"]["size"],
        "duration_s": frames_g.attrs["info"]["duration_s"],
        "video_info": frames_g.attrs["info"],
        "sampling_plan": frames_g.attrs["plan"],
        "clip_spec": clips_g.attrs["clip"],
        "extractor": emb_g.attrs["extractor"]["id"],
        "extractor_config": emb_g.attrs["extractor"],
        "label_set": emb_g.attrs["extractor"].get("label_set"),
    }
    top_labels = emb_g["top_labels"][...] if "top_labels" in emb_members else None
    top_scores = emb_g["top_scores"][...] if "top_scores" in emb_members else None
    path = store.write_video(
        key,
        features=features,
        timestamps=clips_g["timestamps"][...],
        frame_times=clips_g["frame_times"][...],
        attrs=attrs,
        top_labels=top_labels,
        top_scores=top_scores,
    )
    meta = {
        "clips": int(features.shape[0]),
        "feature_shape": list(features.shape),
        "store_path": str(path),
        "seconds": time.perf_counter() - t0,
    }
    if attrs["label_set"] and top_labels is not None and len(top_labels):
        meta["first_clip_top1"] = label_names(attrs["label_set"])[int(top_labels[0, 0, 0])]
    return meta


# -- in-memory path (no artifacts) ----------------------------------------------------------------
def iter_clip_features(
    source: str, config: PipelineConfig, extractor: Extractor, batch_clips: int = 8
) -> Iterator[tuple[list[Clip], ClipFeatures]]:
    """decode -> clips -> embed without intermediate storage, yielding per batch of clips."""
    clips = iter_clips(iter_frames(source, config.plan), config.clip, config.plan.step_s)
    for batch in _batched(clips, batch_clips):
        yield batch, embed_clips(extractor, np.stack([c.pixels for c in batch]))


def _batched(items: Iterable[Clip], n: int) -> Iterator[list[Clip]]:
    buf: list[Clip] = []
    for item in items:
        buf.append(item)
        if len(buf) == n:
            yield buf
            buf = []
    if buf:
        yield buf
