"""The training view: every stored video's clips in flat, chunk-aligned arrays.

Layout (``<view>`` is a Zarr v3 group)::

    zarr.json                attrs: num_rows, num_videos (the commit marker), feature_shape,
                             dtype, chunk_rows, extractor, layout
    features         [N, crops, D]  float16 (or bfloat16 bits as uint16: attrs dtype), chunks of
                                    ``chunk_rows`` rows (= a training batch), at most 16 MB each
                                    (a VAE set's [N, 1, 20, 4, 32, 32]: 64 segments per chunk)
    segment_to_video [N]            int32, row -> index into videos/*
    segment          [N]            int32, row -> its segment in its video (``segments`` plans;
                                    -1 for other plans): a segment's rows are contiguous
    timestamps       [N, 2]         float64, clip start/end seconds
    videos/id, source, content_hash, extractor, plan (JSON)   [V] strings
    videos/duration_s [V] float64, row_start [V] int64, row_count [V] int64, features_sha256 [V]
    videos/caption_embedding [V, Dt] float16 + videos/has_caption [V] bool   (when captions exist)

Incremental: new videos are appended in place, then ``num_rows``/``num_videos`` are updated last;
readers never look past them, so a crash mid-append leaves nothing visible (the next update writes
over the leftovers). Adding 10 videos to 10,000 rewrites only the last partial chunk. A video that
changed (re-extracted) or disappeared from the store triggers a rebuild into a staging directory
that replaces the view in one rename.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import zarr

from vid_assets.store.atomic import atomic_dir
from vid_assets.store.features import FeatureStore
from vid_assets.store.zarr_utils import blosc

LAYOUT = "vid_assets.training_view/2"  # 2: the segment column
STR_FIELDS = ("id", "source", "content_hash", "extractor", "plan", "features_sha256")


def _open(path: Path, mode: str) -> zarr.Group:
    return zarr.open_group(zarr.storage.LocalStore(path, read_only=mode == "r"), mode=mode, zarr_format=3)


def read_videos_table(group: zarr.Group) -> dict[str, np.ndarray]:
    """The committed ``videos`` table as columns (only the first ``num_videos`` rows)."""
    v = int(group.attrs.get("num_videos", 0))
    t = group["videos"]
    cols = {k: t[k][:v] for k in (*STR_FIELDS, "duration_s", "row_start", "row_count")}
    if "caption_embedding" in t.array_keys():
        cols["caption_embedding"] = t["caption_embedding"][:v]
        cols["has_caption"] = t["has_caption"][:v]
    return cols


CHUNK_BYTES = 16 << 20  # the most a features chunk holds: 1024 pooled rows, 64 VAE segments of 160 KB


def feature_chunk_rows(chunk_rows: int, row_shape: tuple, itemsize: int) -> int:
    """Rows per features chunk: ``chunk_rows``, fewer (a power of two) when rows are so large that
    a chunk would pass ``CHUNK_BYTES`` (a loader reads and decompresses a whole chunk at a time)."""
    row_bytes = max(1, int(np.prod(row_shape)) * itemsize)
    fit = max(1, CHUNK_BYTES // row_bytes)
    return min(chunk_rows, 1 << (fit.bit_length() - 1))


class _Writer:
    def __init__(self, group: zarr.Group, chunk_rows: int, level: int) -> None:
        self.g, self.chunk_rows, self.level = group, chunk_rows, level

    def _array(self, name: str, row_shape: tuple, dtype, group: zarr.Group | None = None, chunk: int | None = None):
        g = group if group is not None else self.g
        if name in g.array_keys():
            return g[name]
        is_str = dtype is str
        if chunk is None and name == "features":
            chunk = feature_chunk_rows(self.chunk_rows, row_shape, np.dtype(dtype).itemsize)
        return g.create_array(
            name,
            shape=(0, *row_shape),
            chunks=(chunk or self.chunk_rows, *row_shape),
            dtype=dtype,
            compressors=None if is_str else blosc(self.level),
        )

    def append(self, name: str, data: np.ndarray, start: int, group: zarr.Group | None = None, chunk=None) -> None:
        dtype = str if data.dtype.kind in ("U", "O", "T") else data.dtype
        arr = self._array(name, data.shape[1:], dtype, group, chunk)
        end = start + len(data)
        if arr.shape[0] != end:
            arr.resize((end, *arr.shape[1:]))
        if len(data):
            arr[start:end] = data


def update_training_view(
    store: FeatureStore, path: str | os.PathLike[str], *, chunk_rows: int = 1024, compression_level: int = 0
) -> dict:
    """Bring the view at ``path`` up to date with ``store``; returns what it did."""
    path = Path(path)
    in_store = {vid: store.open_video(vid) for vid in store.list_videos()}
    digests = {vid: g.attrs.get("features_sha256", "") for vid, g in in_store.items()}
    existing: dict[str, str] = {}
    committed = (path / "zarr.json").exists()
    if committed:
        root = _open(path, "a")
        if root.attrs.get("chunk_rows") != chunk_rows or root.attrs.get("layout") != LAYOUT:
            committed = False  # another chunking or an older layout: rebuild
        else:
            table = read_videos_table(root)
            existing = dict(zip(table["id"].tolist(), table["features_sha256"].tolist(), strict=True))
    changed = sorted(v for v, d in existing.items() if v in digests and digests[v] != d)
    removed = sorted(v for v in existing if v not in digests)
    new = sorted(v for v in digests if v not in existing)
    if committed and not changed and not removed:
        added = _append(root, in_store, new, chunk_rows, compression_level)
        return {"mode": "append", "added": added, "changed": [], "removed": [], **_summary(root)}
    with atomic_dir(path, path.parent) as tmp:
        root = _open(tmp, "w")
        root.update_attributes({"layout": LAYOUT, "num_rows": 0, "num_videos": 0, "chunk_rows": chunk_rows})
        added = _append(root, in_store, sorted(digests), chunk_rows, compression_level)
        summary = _summary(root)
    return {"mode": "rebuild", "added": added, "changed": changed, "removed": removed, **summary}


def _summary(root: zarr.Group) -> dict:
    return {k: root.attrs.get(k) for k in ("num_rows", "num_videos", "feature_shape", "extractor")}


def _append(root: zarr.Group, videos: dict[str, zarr.Group], ids: list[str], chunk_rows: int, level: int) -> list[str]:
    if not ids:
        return []
    w = _Writer(root, chunk_rows, level)
    table = root.require_group("videos")
    rows = int(root.attrs.get("num_rows", 0))
    nvid = int(root.attrs.get("num_videos", 0))
    extractor = root.attrs.get("extractor")
    shape = root.attrs.get("feature_shape")
    caption_dim = root.attrs.get("caption_dim")
    for vid in ids:
        g = videos[vid]
        attrs = dict(g.attrs)
        feats = g["features"][...]  # stored bits, copied as is (float16, or bfloat16 as uint16)
        fdtype = attrs.get("feature_dtype", "float16")
        if extractor is None:
            extractor, shape = attrs["extractor"], list(feats.shape[1:])
            root.update_attributes({"extractor": extractor, "feature_shape": shape, "dtype": fdtype})
        if attrs["extractor"] != extractor or list(feats.shape[1:]) != shape or fdtype != root.attrs.get("dtype"):
            raise ValueError(
                f"video {vid} was embedded with {attrs['extractor']} {list(feats.shape[1:])}, but the training view "
                f"holds {extractor} {shape}: one view holds one extractor (re-run the embeddings or use another view)"
            )
        n = len(feats)
        w.append("features", feats, rows)
        w.append("segment_to_video", np.full(n, nvid, dtype=np.int32), rows)
        segments = g["segments"][...] if "segments" in g.array_keys() else np.full(n, -1)
        w.append("segment", segments.astype(np.int32), rows)
        w.append("timestamps", g["timestamps"][...], rows)
        row = {
            "id": vid,
            "source": attrs.get("source", ""),
            "content_hash": attrs.get("content_hash", ""),
            "extractor": attrs["extractor"],
            "plan": json.dumps(attrs.get("sampling_plan", {}), sort_keys=True),
            "features_sha256": attrs.get("features_sha256", ""),
        }
        for k, v in row.items():
            w.append(k, np.array([v], dtype=np.dtypes.StringDType()), nvid, table, chunk=4096)
        w.append("duration_s", np.array([attrs.get("duration_s", np.nan)], dtype=np.float64), nvid, table, chunk=4096)
        w.append("row_start", np.array([rows], dtype=np.int64), nvid, table, chunk=4096)
        w.append("row_count", np.array([n], dtype=np.int64), nvid, table, chunk=4096)
        if "caption_embedding" in g.array_keys() or caption_dim:
            cap = g["caption_embedding"][...] if "caption_embedding" in g.array_keys() else None
            if caption_dim is None:
                caption_dim = int(cap.shape[0])
                root.attrs["caption_dim"] = caption_dim
                # earlier videos had no caption: backfill their rows
                w.append("caption_embedding", np.zeros((nvid, caption_dim), np.float16), 0, table, chunk=4096)
                w.append("has_caption", np.zeros(nvid, dtype=bool), 0, table, chunk=4096)
            vec = cap if cap is not None else np.zeros(caption_dim, np.float16)
            w.append("caption_embedding", vec[None].astype(np.float16), nvid, table, chunk=4096)
            w.append("has_caption", np.array([cap is not None]), nvid, table, chunk=4096)
        rows += n
        nvid += 1
    _commit(root, rows, nvid)
    return list(ids)


def _commit(root: zarr.Group, rows: int, nvid: int) -> None:
    """The commit marker, written last: readers never look past num_rows / num_videos."""
    root.update_attributes({"num_rows": rows, "num_videos": nvid})
