"""The feature store: one Zarr v3 group per video under ``<root>/videos/<video_id>``.

Layout (also in the README)::

    <root>/zarr.json                      root group, attrs: layout version
    <root>/videos/<id>/zarr.json          attrs: source, content hash, duration, sampling plan,
                                          clip spec, extractor id + config, library versions, ...
    <root>/videos/<id>/features           float16 [clips, crops, D]  (or bfloat16 bits as uint16,
                                          attrs feature_dtype = "bfloat16"); a per-frame extractor's
                                          [clips, crops, T, *shape] (a VAE: [S, 1, 20, 4, 32, 32])
    <root>/videos/<id>/timestamps         float64 [clips, 2]   start/end seconds of each clip
    <root>/videos/<id>/frame_times        float64 [clips, T]   pts of each frame used
    <root>/videos/<id>/top_labels         int16   [clips, crops, k]  (classifier heads only; int32 past 32,768 classes)
    <root>/videos/<id>/top_scores         float16 [clips, crops, k]
    <root>/videos/<id>/caption_embedding  float16 [D_text]   (videos registered with a caption)
    <root>/videos/<id>/segments           int32   [clips]    the plan's segment each clip lies in
                                          (segments plans only)

A model's own label list (a hub config's ``label_names``) is kept once per store, as
``<root>/label_sets/labels-<hash>.json``; each video's ``label_set`` attr names it.

A video group appears in one directory rename when complete (see ``store.atomic``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr
from zarr.errors import ContainsGroupError

from vid_assets.store.atomic import atomic_dir, recover
from vid_assets.store.zarr_utils import blosc

LAYOUT_VERSION = 1
FEATURE_DTYPES = ("float16", "bfloat16")


def encode_features(features: np.ndarray, dtype: str) -> np.ndarray:
    """float -> stored array: float16, or bfloat16 bits in uint16 (numpy has no bfloat16)."""
    if dtype == "float16":
        return np.asarray(features).astype(np.float16)
    if dtype == "bfloat16":
        import torch

        t = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)).to(torch.bfloat16)
        return t.view(torch.int16).numpy().view(np.uint16)
    raise ValueError(f"feature dtype must be one of {FEATURE_DTYPES}, got {dtype!r}")


def decode_features(stored: np.ndarray, dtype: str) -> np.ndarray:
    """Stored array -> float numpy (float16 as is; bfloat16 widened to float32)."""
    if dtype == "bfloat16":
        import torch

        return torch.from_numpy(np.ascontiguousarray(stored).view(np.int16)).view(torch.bfloat16).float().numpy()
    return stored


@dataclass
class VideoFeatures:
    video_id: str
    features: np.ndarray
    timestamps: np.ndarray
    frame_times: np.ndarray
    attrs: dict
    top_labels: np.ndarray | None = None
    top_scores: np.ndarray | None = None
    caption_embedding: np.ndarray | None = None
    segments: np.ndarray | None = None  # int32 [clips]: segment index of each clip (segments plans)

    @property
    def num_clips(self) -> int:
        return int(self.features.shape[0])


@functools.cache
def _library_versions() -> tuple[tuple[str, str], ...]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("vid_assets", "torch", "torchvision", "timm", "av", "zarr", "numpy"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return tuple(out.items())


def library_versions() -> dict[str, str]:
    """Installed versions stored with every video (read once per process: ~0.8 ms per lookup)."""
    return dict(_library_versions())


def _require_finite(value, where: str = "attrs") -> None:
    """No NaN or inf reaches stored metadata (zarr writes them as non-standard JSON that other
    readers reject, and a NaN duration breaks every count made from it)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"non-finite value in the video's metadata: {where} = {value}")
    if isinstance(value, dict):
        for k, v in value.items():
            _require_finite(v, f"{where}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _require_finite(v, f"{where}[{i}]")


def _check_shapes(features: np.ndarray, timestamps: np.ndarray, frame_times: np.ndarray, segments) -> None:
    if features.ndim < 3:
        raise ValueError(f"features must be [clips, crops, D] (or [clips, crops, *shape]), got {features.shape}")
    n = features.shape[0]
    if timestamps.shape != (n, 2) or frame_times.shape[0] != n:
        raise ValueError(f"timestamps {timestamps.shape} / frame_times {frame_times.shape} do not match {n} clips")
    if segments is not None and np.shape(segments) != (n,):
        raise ValueError(f"segments {np.shape(segments)} do not match {n} clips")


def _label_indices(top_labels) -> np.ndarray:
    """int16, or int32 for a head of over 32k classes (the engine picks it per model; wider input
    is narrowed to what its values need)."""
    labels = np.asarray(top_labels)
    if labels.dtype not in (np.int16, np.int32):
        wide = labels.size and int(labels.max()) > np.iinfo(np.int16).max
        labels = labels.astype(np.int32 if wide else np.int16)
    return labels


class FeatureStore:
    def __init__(
        self, root: str | os.PathLike[str], compression_level: int = 5, chunk_clips: int = 256, dtype: str = "float16"
    ) -> None:
        if dtype not in FEATURE_DTYPES:
            raise ValueError(f"feature dtype must be one of {FEATURE_DTYPES}, got {dtype!r}")
        self.root = Path(root)
        self.dtype = dtype
        self.compression_level = compression_level
        self.chunk_clips = chunk_clips
        recover(self.root)  # a writer that died mid-swap: its complete video goes in place

    # -- layout ---------------------------------------------------------------------------------
    @property
    def videos_dir(self) -> Path:
        return self.root / "videos"

    def video_path(self, video_id: str) -> Path:
        return self.videos_dir / video_id

    @property
    def label_sets_dir(self) -> Path:
        """A model's own label lists (``labels-<hash>.json``), once per store, not once per video."""
        return self.root / "label_sets"

    def save_label_set(self, label_set: str, names: list[str]) -> None:
        """Keep the names of a model's own ``label_set`` in this store (named sets need nothing)."""
        from vid_assets.extractors.labels import save_label_set

        save_label_set(self.label_sets_dir, label_set, names)

    def label_names(self, label_set: str) -> list[str]:
        """The class names ``top_labels`` index: a named set, or a model's own list kept here."""
        from vid_assets.extractors.labels import CUSTOM_PREFIX, label_names, load_label_set

        if label_set.startswith(CUSTOM_PREFIX):
            names = load_label_set(self.label_sets_dir, label_set)
            if names is not None:
                return names
        return label_names(label_set)

    def _ensure_root(self) -> None:
        """Create the root and ``videos/`` groups once; safe when writers race to do it.

        zarr's ``mode="a"`` checks-then-creates, so two processes creating the same group can
        both see "absent" and the loser raises ``ContainsGroupError``: the group it wanted exists,
        which is all we need.
        """
        if not (self.root / "zarr.json").exists():
            self.root.mkdir(parents=True, exist_ok=True)
            try:
                g = zarr.open_group(zarr.storage.LocalStore(self.root), mode="a", zarr_format=3)
                g.update_attributes({"vid_assets_layout": LAYOUT_VERSION})
            except ContainsGroupError:
                pass
        if not (self.videos_dir / "zarr.json").exists():
            with contextlib.suppress(ContainsGroupError):
                zarr.open_group(zarr.storage.LocalStore(self.videos_dir), mode="a", zarr_format=3)

    # -- writing --------------------------------------------------------------------------------
    def write_video(
        self,
        video_id: str,
        *,
        features: np.ndarray,
        timestamps: np.ndarray,
        frame_times: np.ndarray,
        attrs: dict,
        top_labels: np.ndarray | None = None,
        top_scores: np.ndarray | None = None,
        caption_embedding: np.ndarray | None = None,
        segments: np.ndarray | None = None,
    ) -> Path:
        """Write (or replace) one video atomically and return its path."""
        features = np.asarray(features)
        _check_shapes(features, timestamps, frame_times, segments)
        n = features.shape[0]
        _require_finite(attrs)
        self._ensure_root()
        chunk = max(1, min(self.chunk_clips, n))
        with atomic_dir(self.video_path(video_id), self.root) as tmp:
            g = zarr.open_group(zarr.storage.LocalStore(tmp), mode="w", zarr_format=3)
            arrays = {
                "features": encode_features(features, self.dtype),
                "timestamps": np.asarray(timestamps, dtype=np.float64),
                "frame_times": np.asarray(frame_times, dtype=np.float64),
            }
            if top_labels is not None and top_scores is not None:
                arrays["top_labels"] = _label_indices(top_labels)
                arrays["top_scores"] = np.asarray(top_scores, dtype=np.float16)
            if caption_embedding is not None:
                arrays["caption_embedding"] = np.asarray(caption_embedding, dtype=np.float16)
            if segments is not None:
                arrays["segments"] = np.asarray(segments, dtype=np.int32)
            for name, data in arrays.items():  # created with their data: one store call each
                g.create_array(
                    name,
                    data=data,
                    chunks=data.shape if name == "caption_embedding" else (chunk, *data.shape[1:]),
                    compressors=blosc(self.compression_level),
                )
            g.update_attributes(
                {
                    **attrs,
                    "video_id": video_id,
                    "num_clips": int(n),
                    "feature_shape": list(features.shape),
                    "feature_dtype": self.dtype,
                    # content digest (not a timestamp): re-materializing the same video writes
                    # identical bytes, and the training view can tell changed videos apart
                    "features_sha256": hashlib.sha256(arrays["features"].tobytes()).hexdigest()[:16],
                    "versions": library_versions(),
                }
            )
        return self.video_path(video_id)

    # -- reading --------------------------------------------------------------------------------
    def stamp(self, video_id: str) -> str:
        """What changes when the video is written again (exports skip what did not change)."""
        return str((self.video_path(video_id) / "zarr.json").stat().st_mtime_ns)

    def list_videos(self) -> list[str]:
        if not self.videos_dir.is_dir():
            return []
        return sorted(p.name for p in self.videos_dir.iterdir() if p.is_dir() and (p / "zarr.json").exists())

    def has_video(self, video_id: str) -> bool:
        return (self.video_path(video_id) / "zarr.json").exists()

    def open_video(self, video_id: str) -> zarr.Group:
        p = self.video_path(video_id)
        if not (p / "zarr.json").exists():
            raise KeyError(f"video {video_id!r} is not in the store at {self.root}")
        return zarr.open_group(zarr.storage.LocalStore(p, read_only=True), mode="r")

    def video_attrs(self, video_id: str) -> dict:
        """A stored video's attributes alone (extractor, plan, counts, digests): no array is read."""
        return dict(self.open_video(video_id).attrs)

    def check(self, video_id: str) -> list:
        """The stored video's data-quality checks (``store.validate``), as the asset checks report them."""
        from vid_assets.store.validate import validate_video

        return validate_video(self.open_video(video_id))

    def check_written(self, features: np.ndarray, timestamps: np.ndarray, attrs: dict) -> list:
        """:meth:`check` on what :meth:`write_video` was just given, in its stored form (this
        store's dtype), without reading the video back: reading it back cost a run ~3.5 ms a
        video on the 2-core VM, 5 % of a run of 2-s videos (benchmarks/RESULTS.md)."""
        from vid_assets.store.validate import validate_arrays

        stored = decode_features(encode_features(features, self.dtype), self.dtype)
        return validate_arrays({**attrs, "feature_shape": list(np.shape(features))}, stored, np.asarray(timestamps))

    def read_video(self, video_id: str, *, rows_only: bool = False) -> VideoFeatures:
        """A stored video, typed. ``rows_only``: features, timestamps and segments alone (what a
        table of clip rows needs: the Hub's shards), leaving the other arrays unread."""
        g = self.open_video(video_id)
        members = set(g.array_keys()) - (
            {"frame_times", "top_labels", "top_scores", "caption_embedding"} if rows_only else set()
        )

        def read(name: str):
            return g[name][...] if name in members else None

        timestamps = g["timestamps"][...]
        frame_times = read("frame_times")
        return VideoFeatures(
            video_id=video_id,
            features=self.features(g),
            timestamps=timestamps,
            frame_times=frame_times if frame_times is not None else np.zeros((len(timestamps), 0)),
            attrs=dict(g.attrs),
            top_labels=read("top_labels"),
            top_scores=read("top_scores"),
            caption_embedding=read("caption_embedding"),
            segments=read("segments"),
        )

    @staticmethod
    def features(group: zarr.Group) -> np.ndarray:
        """A video group's features as float numpy (bfloat16 stores are widened to float32)."""
        return decode_features(group["features"][...], group.attrs.get("feature_dtype", "float16"))

    def delete_video(self, video_id: str) -> None:
        import shutil

        shutil.rmtree(self.video_path(video_id), ignore_errors=True)
