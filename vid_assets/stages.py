"""The four stages of the per-video pipeline as plain functions over the artifact store.

Dagster assets (``pipeline/assets.py``) are thin wrappers around these; the in-memory path used by
``iter_clip_features`` (library use, demo checks) chains the very same generators
(``iter_frames`` -> ``iter_clips`` -> ``embed_clips``) without touching disk.
Each stage streams: memory is bounded by a chunk of frames / a batch of clips, not by video length.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from vid_assets.clips import Clip, ClipSpec, iter_clips
from vid_assets.extractors import ClipFeatures, Extractor, InputSpec, embed_clips, iter_pipelined, submit_clips
from vid_assets.extractors.labels import load_label_set, save_label_set
from vid_assets.extractors.text import DEFAULT_TEXT_MODEL
from vid_assets.media import DecodedFrame, SamplingPlan, VideoRef, iter_frames, probe
from vid_assets.media.contact import ContactSheet
from vid_assets.media.decode import RGB_RESIZE, DecodeStats
from vid_assets.store import ArrayAppender, ArtifactStore, FeatureStore

FRAMES, CLIPS, EMBEDDINGS = "frames", "clips", "embeddings"
LABEL_SETS = "label_sets"  # a model's own label lists, one file each (extractors.labels)
FRAME_CHUNK = 16
CLIP_CHUNK = 8
READ_IMAGES = 32  # embed stage: images per artifact read, at least (CPU passes are 8)


@dataclass(frozen=True)
class PipelineConfig:
    plan: SamplingPlan = field(default_factory=SamplingPlan)
    clip: ClipSpec = field(default_factory=ClipSpec)
    top_k: int = 5


def _spec_of(fit: Extractor | InputSpec) -> InputSpec:
    return fit.input_spec if isinstance(fit, Extractor) else fit


def clip_spec_for(
    fit: Extractor | InputSpec, frames_per_clip: int = 0, stride: int = 0, crop_size: int = 0, **kwargs: Any
) -> ClipSpec:
    """A clip spec that fits a model (an extractor, or its ``input_spec``); ``0`` = fit: crops at
    its input size, clips of its ``num_frames`` for clip models or of 2 frames for frame models,
    starting every clip length (no overlap). A video model fed 2-frame clips would fail every batch."""
    spec = _spec_of(fit)
    frames = frames_per_clip or (spec.num_frames if spec.kind == "clip" else 2)
    return ClipSpec(frames_per_clip=frames, stride=stride or frames, crop_size=crop_size or spec.size, **kwargs)


def short_side_for(fit: Extractor | InputSpec, short_side: int = 0, crop_size: int = 0) -> int:
    """The short side frames are resized to: ``short_side``, or (``0``) the model's own eval resize
    (256 for a 224-px ImageNet model at crop_pct 0.875, 248 for timm's ViT-B/16, 128 for
    torchvision's 112-px video models), never below the crop."""
    spec = _spec_of(fit)
    return short_side or max(spec.resize, crop_size or spec.size)


def config_for(fit: Extractor | InputSpec, fps: float = 2.0, top_k: int = 5, **clip_kwargs: Any) -> PipelineConfig:
    """``fps`` sampling at the model's own resize (``short_side_for``) into clips that fit it
    (``clip_spec_for``: ``frames_per_clip``, ``stride``, ``crop_size``, ``crop``, ...)."""
    clip = clip_spec_for(fit, **clip_kwargs)
    plan = SamplingPlan.at_fps(fps, short_side=short_side_for(fit, 0, clip.crop_size))
    return PipelineConfig(plan=plan, clip=clip, top_k=top_k)


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
        if plan.mode == "segments":  # clips must not cross segments (clips.build.iter_clips)
            g.create_array("segments", data=np.asarray(segments, dtype=np.int32))
        g.update_attributes(
            {
                "source": ref.to_dict(),
                "info": info.to_dict(),
                "plan": plan.to_dict(),
                "decode": stats.to_dict(),
                "resize": RGB_RESIZE,
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


# -- stage 3: embeddings --------------------------------------------------------------------------
def _top_k(logits: np.ndarray | None, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    if logits is None:
        return None
    import torch

    b, c, n = logits.shape
    probs = torch.softmax(torch.from_numpy(logits.reshape(b * c, n)), dim=-1)
    scores, idx = probs.topk(min(k, n), dim=-1)
    index_dtype = np.int16 if n <= np.iinfo(np.int16).max + 1 else np.int32  # a 40k-class head wraps int16
    return idx.numpy().astype(index_dtype).reshape(b, c, -1), scores.numpy().reshape(b, c, -1)


class _EmbeddingsWriter:
    """One video's embeddings artifact, open while its clips stream through the model."""

    def __init__(self, artifacts: ArtifactStore, key: str) -> None:
        self.key = key
        self._cm = artifacts.writer(EMBEDDINGS, key)
        self.group = self._cm.__enter__()
        self.feats = ArrayAppender(self.group, "features", 256, np.float16)
        self.labels: ArrayAppender | None = None  # made with the first top-k: its index dtype
        self.scores = ArrayAppender(self.group, "top_scores", 256, np.float16)
        self.clips = 0
        self.seconds = 0.0

    def add(self, feats: np.ndarray, top: tuple[np.ndarray, np.ndarray] | None) -> None:
        for i in range(len(feats)):
            self.feats.add(feats[i])
            if top is not None:
                if self.labels is None:
                    self.labels = ArrayAppender(self.group, "top_labels", 256, top[0].dtype)
                self.labels.add(top[0][i])
                self.scores.add(top[1][i])
        self.clips += len(feats)

    def commit(self, attrs: dict) -> list[int]:
        for a in (self.feats, self.labels, self.scores):
            if a is not None:
                a.close()
        self.group.update_attributes(attrs)
        shape = list(self.feats.array.shape) if self.feats.array is not None else [0]
        self._cm.__exit__(None, None, None)
        return shape

    def abort(self, exc: BaseException) -> None:
        self._cm.__exit__(type(exc), exc, exc.__traceback__)


class _Chunk(NamedTuple):
    key: str
    reduce: str  # crop_reduce of the video's clip spec
    frames: int  # frames per clip x crops: images the model sees per clip
    pixels: Any  # uint8 tensor [n, T, crops, S, S, 3], pinned for CUDA
    last: bool  # the video's final chunk


def embed_videos(
    keys: list[str],
    extractor: Extractor,
    artifacts: ArtifactStore,
    top_k: int = 5,
    text_model: str = DEFAULT_TEXT_MODEL,
) -> dict[str, dict]:
    """Embed every clip of every video in ``keys`` into ``embeddings/<key>.zarr`` (float16).

    Batches span videos: clips from consecutive videos fill one forward pass, so many short videos
    in one run keep the device as busy as one long video. Reading the next chunk from the artifact
    store runs in a background thread (``prefetch``) while the model computes. Each video's artifact
    commits as soon as its last clip is done; returns per-video metadata. Videos registered with a
    caption also get ``caption_embedding`` from ``text_model`` (loaded only if a caption exists).
    """
    import torch

    from vid_assets.extractors.feed import prefetch, to_pinned

    if extractor.label_set:  # a model's own names: one file beside the artifacts for the storage step
        save_label_set(artifacts.root / LABEL_SETS, extractor.label_set, extractor.labels)

    def chunks() -> Iterator[_Chunk]:
        for key in keys:
            g = artifacts.open(CLIPS, key)
            pixels, reduce = g["pixels"], g.attrs["clip"].get("crop_reduce", "none")
            frames = int(pixels.shape[1] * pixels.shape[2])
            # read at least READ_IMAGES images at a time: the extractor splits them into passes,
            # and fewer, larger reads cost less host time beside a CPU model (RESULTS.md)
            step = max(1, max(extractor.batch_size, READ_IMAGES) // frames)
            for start in range(0, pixels.shape[0], step):
                block = to_pinned(pixels[start : start + step], extractor.device)
                yield _Chunk(key, reduce, frames, block, start + len(block) == pixels.shape[0])

    attrs = {"extractor": extractor.describe()}
    writers: dict[str, _EmbeddingsWriter] = {}
    results: dict[str, dict] = {}

    def passes() -> Iterator[list[_Chunk]]:
        """Consecutive chunks (of one or more videos) that fill one forward pass; a chunk larger
        than a pass (``READ_IMAGES`` on the CPU) goes alone and the extractor splits it."""
        pending: list[_Chunk] = []
        for chunk in prefetch(chunks(), depth=3):
            capacity = max(1, extractor.batch_size // chunk.frames)
            queued = sum(len(c.pixels) for c in pending)
            if pending and (queued + len(chunk.pixels) > capacity or pending[0].reduce != chunk.reduce):
                yield pending
                pending = []
            if chunk.key not in writers:
                writers[chunk.key] = _EmbeddingsWriter(artifacts, chunk.key)
            pending.append(chunk)
        if pending:
            yield pending

    def submit(group: list[_Chunk]):
        if len(group) == 1:
            batch = group[0].pixels
        else:  # clips of several videos in one pass; keep the batch page-locked for the upload
            parts = [c.pixels for c in group]
            batch = torch.empty(
                (sum(map(len, parts)), *parts[0].shape[1:]), dtype=torch.uint8, pin_memory=parts[0].is_pinned()
            )
            torch.cat(parts, out=batch)
        return submit_clips(extractor, batch, crop_reduce=group[0].reduce)

    try:
        # on an accelerator the host writes batch i while the device computes batch i + 1
        last_done = time.perf_counter()
        for group, queued in iter_pipelined(passes(), submit):
            out = queued.result()
            top = _top_k(out.logits, top_k)
            now = time.perf_counter()  # time per clip: between consecutive finished passes
            share = (now - last_done) / max(1, sum(len(c.pixels) for c in group))
            last_done = now
            offset = 0
            for c in group:
                sl = slice(offset, offset + len(c.pixels))
                offset = sl.stop
                w = writers[c.key]
                w.add(out.features[sl], None if top is None else (top[0][sl], top[1][sl]))
                w.seconds += share * len(c.pixels)
                if c.last:
                    captioned = _caption_attrs(artifacts, c.key, w, text_model)
                    shape = writers.pop(c.key).commit({**attrs, **captioned})
                    results[c.key] = {
                        "clips": w.clips,
                        "feature_shape": shape,
                        "extractor": extractor.id,
                        "device": str(extractor.device),
                        "seconds": w.seconds,
                        "clips_per_s": w.clips / max(w.seconds, 1e-9),
                        "images_per_s": w.clips * c.frames / max(w.seconds, 1e-9),
                    }
    except BaseException as e:
        for w in writers.values():
            w.abort(e)
        raise
    return results


def _caption_attrs(artifacts: ArtifactStore, key: str, writer: _EmbeddingsWriter, text_model: str) -> dict:
    caption = artifacts.open(FRAMES, key).attrs["source"].get("caption")
    if not caption:
        return {}
    from vid_assets.extractors.text import get_text_embedder

    text_embedder = get_text_embedder(text_model)
    vec = text_embedder.embed([caption])[0].astype(np.float16)
    writer.group.create_array("caption_embedding", data=vec, compressors=None)
    return {"caption": caption, "text_model": text_embedder.describe()}


def embed_video(
    key: str, extractor: Extractor, artifacts: ArtifactStore, top_k: int = 5, text_model: str = DEFAULT_TEXT_MODEL
) -> dict:
    """Embed one video (see :func:`embed_videos`)."""
    return embed_videos([key], extractor, artifacts, top_k, text_model)[key]


# -- stage 4: store -------------------------------------------------------------------------------
def store_video(key: str, artifacts: ArtifactStore, store: FeatureStore) -> dict:
    """Publish one video's features + timestamps + provenance into the feature store, atomically."""
    t0 = time.perf_counter()
    frames_g, clips_g, emb_g = (artifacts.open(a, key) for a in (FRAMES, CLIPS, EMBEDDINGS))
    emb_members = set(emb_g.array_keys())
    features = emb_g["features"][...]
    clip_members = set(clips_g.array_keys())
    attrs = {
        "source": frames_g.attrs["source"]["uri"],
        "content_hash": frames_g.attrs["source"]["content_hash"],
        "size_bytes": frames_g.attrs["source"]["size"],
        "duration_s": frames_g.attrs["info"]["duration_s"],
        "video_info": frames_g.attrs["info"],
        "sampling_plan": frames_g.attrs["plan"],
        "frame_resize": frames_g.attrs.get("resize"),
        "clip_spec": clips_g.attrs["clip"],
        "extractor": emb_g.attrs["extractor"]["id"],
        "extractor_config": emb_g.attrs["extractor"],
        "label_set": emb_g.attrs["extractor"].get("label_set"),
    }
    if "caption_embedding" in emb_members:
        attrs["caption"] = emb_g.attrs["caption"]
        attrs["text_model"] = emb_g.attrs["text_model"]
    top_labels = emb_g["top_labels"][...] if "top_labels" in emb_members else None
    top_scores = emb_g["top_scores"][...] if "top_scores" in emb_members else None
    own = load_label_set(artifacts.root / LABEL_SETS, attrs["label_set"]) if attrs["label_set"] else None
    if own is not None:  # a model's own label list goes to the store once, not into every video
        store.save_label_set(attrs["label_set"], own)
    path = store.write_video(
        key,
        features=features,
        timestamps=clips_g["timestamps"][...],
        frame_times=clips_g["frame_times"][...],
        attrs=attrs,
        top_labels=top_labels,
        top_scores=top_scores,
        caption_embedding=emb_g["caption_embedding"][...] if "caption_embedding" in emb_members else None,
        segments=clips_g["segments"][...] if "segments" in clip_members else None,
    )
    meta = {
        "clips": int(features.shape[0]),
        "feature_shape": list(features.shape),
        "store_path": str(path),
        "seconds": time.perf_counter() - t0,
    }
    if attrs["label_set"] and top_labels is not None and len(top_labels):
        meta["first_clip_top1"] = store.label_names(attrs["label_set"])[int(top_labels[0, 0, 0])]
    return meta


# -- in-memory path (no artifacts) ----------------------------------------------------------------
def iter_clip_features(
    source: str, config: PipelineConfig | None, extractor: Extractor, batch_clips: int = 8
) -> Iterator[tuple[list[Clip], ClipFeatures]]:
    """decode -> clips -> embed without intermediate storage, yielding per batch of clips.
    ``config=None``: 2 fps, frames and clips fitted to the extractor (``config_for``)."""
    config = config or config_for(extractor)
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
