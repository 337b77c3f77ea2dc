"""Train straight from the store: PyTorch datasets over a training view (or any Zarr array).

``ClipDataset`` reads whole chunks (one decompression per chunk, not per sample), shuffles the
chunk order per epoch, mixes rows across a small buffer of chunks, and yields ready batches, so a
``DataLoader(ds, batch_size=None, num_workers=..., pin_memory=True)`` runs at disk/decompression
speed. Workers split the chunks between them; every row appears exactly once per epoch.
``VideoDataset`` gives one item per video (all its clips, timestamps, caption embedding).

Both open local paths and any fsspec URL (``s3://``, ``hf://`` through huggingface_hub's
filesystem, ``http://``, ``memory://``), via zarr's ``FsspecStore``.

Switching a training script from decoding videos to the store::

    # before: for path in videos: frames = decode(path); x = model(frames) ...
    from torch.utils.data import DataLoader
    from vid_assets.loader import ClipDataset
    ds = ClipDataset("data/training_view.zarr", batch_size=256, shuffle=True)
    for epoch in range(E):
        ds.set_epoch(epoch)
        for batch in DataLoader(ds, batch_size=None, num_workers=4, pin_memory=True):
            x, video, t = batch["features"], batch["video"], batch["timestamps"]
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch
import zarr
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from vid_assets.memory import tune_malloc
from vid_assets.prefetch import prefetch


def open_group(location: str | os.PathLike[str], storage_options: dict | None = None) -> zarr.Group:
    """Read-only Zarr group from a local path or an fsspec URL."""
    loc = os.fspath(location)
    if "://" in loc and not loc.startswith("file://"):
        store = zarr.storage.FsspecStore.from_url(loc, read_only=True, storage_options=storage_options or {})
    else:
        store = zarr.storage.LocalStore(loc.removeprefix("file://"), read_only=True)
    return zarr.open_group(store=store, mode="r")


class ClipDataset(IterableDataset):
    """Batches of rows of ``array`` (default ``features``), chunk-aligned and shuffled.

    Yields dicts: ``features`` tensor ``[b, ...]``, ``index`` (row numbers) and, when the group has
    them, ``video`` (``segment_to_video``) and ``timestamps``. ``shuffle_buffer`` chunks are mixed
    at a time (rows from different chunks land in one batch); ``drop_last`` drops a short final batch.
    """

    def __init__(
        self,
        location: str | os.PathLike[str],
        *,
        array: str = "features",
        batch_size: int = 64,
        shuffle: bool = True,
        shuffle_buffer: int = 2,
        seed: int = 0,
        drop_last: bool = False,
        storage_options: dict | None = None,
        tune_malloc: bool = True,
    ) -> None:
        self.location, self.array_name, self.storage_options = location, array, storage_options
        self.batch_size, self.shuffle, self.shuffle_buffer = batch_size, shuffle, max(1, shuffle_buffer)
        self.seed, self.drop_last, self.epoch = seed, drop_last, 0
        self.tune_malloc = tune_malloc
        g = open_group(location, storage_options)
        arr = g[array]
        self.num_rows = int(g.attrs.get("num_rows", arr.shape[0]))  # honour the commit marker
        self.chunk_rows = int(arr.chunks[0])
        self.has_meta = "segment_to_video" in g.array_keys() and "timestamps" in g.array_keys()
        self.bfloat16 = array == "features" and g.attrs.get("dtype") == "bfloat16"
        self._group: zarr.Group | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = self.num_rows / self.batch_size
        return int(n) if self.drop_last else math.ceil(n)

    def _chunks(self) -> list[int]:
        n = math.ceil(self.num_rows / self.chunk_rows)
        order = np.arange(n)
        if self.shuffle:
            np.random.default_rng((self.seed, self.epoch)).shuffle(order)
        info = get_worker_info()
        if info is not None:
            order = order[info.id :: info.num_workers]
        return order.tolist()

    def _read(self, c: int) -> dict[str, np.ndarray]:
        g = self._group
        lo, hi = c * self.chunk_rows, min((c + 1) * self.chunk_rows, self.num_rows)
        out = {"features": g[self.array_name][lo:hi], "index": np.arange(lo, hi)}
        if self.has_meta:
            out["video"] = g["segment_to_video"][lo:hi]
            out["timestamps"] = g["timestamps"][lo:hi]
        return out

    def __iter__(self):
        if self._group is None:  # opened lazily, once per worker process
            if self.tune_malloc:
                tune_malloc()
            self._group = open_group(self.location, self.storage_options)
        info = get_worker_info()
        rng = np.random.default_rng((self.seed, self.epoch, info.id if info else 0))
        chunks = self._chunks()
        carry: dict[str, np.ndarray] | None = None
        groups = [chunks[i : i + self.shuffle_buffer] for i in range(0, len(chunks), self.shuffle_buffer)]
        # chunk reads (file I/O + blosc, GIL released) run one pool ahead in a thread
        for parts in prefetch(([self._read(c) for c in g] for g in groups), depth=1):
            if carry is not None:
                parts.insert(0, carry)
            sizes = [len(p["index"]) for p in parts]
            offsets = np.concatenate([[0], np.cumsum(sizes)])
            n = int(offsets[-1])
            order = rng.permutation(n) if self.shuffle else np.arange(n)
            full = n - n % self.batch_size
            for i in range(0, full, self.batch_size):
                yield self._tensors(_gather(parts, offsets, order[i : i + self.batch_size]))
            carry = _gather(parts, offsets, order[full:]) if full < n else None
        if carry is not None and not self.drop_last:
            yield self._tensors(carry)

    def _tensors(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        out = {k: torch.from_numpy(v) for k, v in batch.items()}
        if self.bfloat16:  # stored as uint16 bits: a free reinterpretation
            out["features"] = out["features"].view(torch.int16).view(torch.bfloat16)
        return out


def _gather(parts: list[dict[str, np.ndarray]], offsets: np.ndarray, sel: np.ndarray) -> dict[str, np.ndarray]:
    """Rows ``sel`` of the pool (the chunks in ``parts`` end to end) copied once into a new batch.

    Rows are grouped by source chunk (a batch is a set: its internal order carries no meaning), so
    each chunk contributes one contiguous ``np.take`` straight into the output buffer; the chunks
    are never concatenated.
    """
    sel = np.sort(sel)
    owner = np.searchsorted(offsets, sel, side="right") - 1
    bounds = np.searchsorted(owner, np.arange(len(parts) + 1))
    out = {k: np.empty((len(sel), *v.shape[1:]), dtype=v.dtype) for k, v in parts[0].items()}
    for j, p in enumerate(parts):
        lo, hi = bounds[j], bounds[j + 1]
        if hi > lo:
            rows = sel[lo:hi] - offsets[j]
            for k, v in p.items():
                np.take(v, rows, axis=0, out=out[k][lo:hi])
    return out


class VideoDataset(Dataset):
    """One item per video of a training view: all its clips, their timestamps, its caption."""

    def __init__(self, location: str | os.PathLike[str], storage_options: dict | None = None) -> None:
        from vid_assets.store.training import read_videos_table

        self.location, self.storage_options = location, storage_options
        g = open_group(location, storage_options)
        self.table = read_videos_table(g)
        self._group: zarr.Group | None = None

    def __len__(self) -> int:
        return len(self.table["id"])

    def __getitem__(self, i: int) -> dict[str, Any]:
        if self._group is None:
            self._group = open_group(self.location, self.storage_options)
        g, t = self._group, self.table
        lo = int(t["row_start"][i])
        hi = lo + int(t["row_count"][i])
        feats = torch.from_numpy(g["features"][lo:hi])
        if g.attrs.get("dtype") == "bfloat16":
            feats = feats.view(torch.int16).view(torch.bfloat16)
        item = {
            "video_id": str(t["id"][i]),
            "features": feats,
            "timestamps": torch.from_numpy(g["timestamps"][lo:hi]),
        }
        if "caption_embedding" in t and bool(t["has_caption"][i]):
            item["caption_embedding"] = torch.from_numpy(np.asarray(t["caption_embedding"][i]))
        return item
