"""An engine result into the feature store, with its provenance (source, plan, model, caption),
and a video's decode as the ``decoded_frames`` asset reports it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from vid_assets.engine import VideoResult
from vid_assets.extractors.text import DEFAULT_TEXT_MODEL
from vid_assets.fit import PipelineConfig
from vid_assets.media import VideoRef
from vid_assets.media.decode import RGB_RESIZE
from vid_assets.media.identity import name_text
from vid_assets.store import FeatureStore


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
        "frames_skipped": stats.get("skipped", 0),  # dropped undecoded: unreferenced, no sample near them
        "seeks": stats["seeks"],
        "key_frame_jumps": stats.get("jumps", 0),  # of the seeks: to a key frame presenting by the next sample
        "corrupt_frames": stats["corrupt"],
        "missing_frames": stats["missing"],
        "seconds": took,
        "decode_fps": summary.get("frames", 0) / max(took, 1e-9),
    }


@dataclass(frozen=True)
class Stored:
    """A video just stored: the ``stored_features`` metadata, and the store's checks on what was
    written, computed when asked (a run reports them; ``vid-assets extract`` does not)."""

    meta: dict
    store: FeatureStore
    features: np.ndarray
    timestamps: np.ndarray
    attrs: dict

    @cached_property
    def checks(self) -> list:
        return self.store.check_written(self.features, self.timestamps, self.attrs)


def store_result(
    ref: VideoRef,
    result: VideoResult,
    store: FeatureStore,
    extractor_info: dict,
    config: PipelineConfig,
    *,
    labels: list[str] | None = None,
    text_model: str = DEFAULT_TEXT_MODEL,
) -> Stored:
    """Publish one video's features + timestamps + provenance into the feature store, atomically,
    and check what was written (``FeatureStore.check_written``).

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
    return Stored(meta, store, features, result.timestamps, attrs)


def _caption_embedding(ref: VideoRef, text_model: str, attrs: dict) -> np.ndarray | None:
    """The caption's text embedding (float16), noting the caption and the text model in ``attrs``."""
    if not ref.caption:
        return None
    from vid_assets.extractors.text import get_text_embedder

    embedder = get_text_embedder(text_model)
    attrs["caption"], attrs["text_model"] = ref.caption, embedder.describe()
    return embedder.embed([ref.caption])[0].astype(np.float16)
