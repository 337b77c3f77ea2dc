"""Train straight from the store: PyTorch datasets over a training view (or any Zarr array).

``ClipDataset`` reads whole chunks (one decompression per chunk, not per sample), shuffles the
chunk order per epoch, mixes rows across a small buffer of chunks, and yields ready batches, so
``ds.loader(num_workers=..., pin_memory=True)`` (readers on threads) runs at disk/decompression
speed. A plain DataLoader's worker processes split the chunks; every row appears once per epoch.
``vid_assets.hub.dataset.HubClipDataset`` reads the Parquet dataset ``hub_dataset`` publishes
(``hf://datasets/...``, or a local copy of the repo) the same way. ``VideoDataset`` gives one item per video (all its clips, timestamps, caption embedding);
``SegmentDataset`` batches whole segments of a ``segments`` plan (the seed notes' ``[segments,
frames, D]`` with a segment -> video map) the same way.

All three open local paths and any fsspec URL (``s3://``, ``hf://`` through huggingface_hub's
filesystem, ``http://``, ``memory://``), via zarr's ``FsspecStore``.

Switching a training script from decoding videos to the store::

    # before: for path in videos: frames = decode(path); x = model(frames) ...
    from vid_assets.loader import ClipDataset
    ds = ClipDataset("data/training_view.zarr", batch_size=256, shuffle=True)
    loader = ds.loader(num_workers=4, pin_memory=True)
    for epoch in range(E):
        ds.set_epoch(epoch)
        for batch in loader:
            x, video, t = batch["features"], batch["video"], batch["timestamps"]
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Any

import numpy as np
import torch
import zarr
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from vid_assets.runtime.memory import tune_malloc
from vid_assets.runtime.pool import permuted_pool
from vid_assets.runtime.reader_threads import SLOW_HANDOVER, ThreadedLoading
from vid_assets.store.chunks import ChunkReader
from vid_assets.store.view import TrainingView

# row columns (video, timestamps, segment) this small are read whole once per worker: a Zarr call per
# chunk for a few hundred bytes cost more than the chunk's features (~1 ms each on the 2-core VM)
SMALL_COLUMNS_BYTES = 256 << 20


class ClipDataset(ThreadedLoading, IterableDataset):
    """Batches of rows of ``array`` (default ``features``), chunk-aligned and shuffled.

    Yields dicts: ``features`` tensor ``[b, ...]``, ``index`` (row numbers) and, when the group has
    them, ``video`` (``segment_to_video``), ``timestamps`` and ``segment`` (each row's segment in its
    video, -1 outside ``segments`` plans). ``shuffle_buffer`` chunks are mixed
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
        rank: int | None = None,
        world_size: int | None = None,
        read_threads: int = 1,
    ) -> None:
        self.read_threads = max(1, read_threads)
        self._given = rank is not None and world_size is not None
        self._rank, self._world = (rank, world_size) if self._given else dist_shard()
        self.location, self.array_name, self.storage_options = location, array, storage_options
        self.batch_size, self.shuffle, self.shuffle_buffer = batch_size, shuffle, max(1, shuffle_buffer)
        self.seed, self.drop_last, self.epoch = seed, drop_last, 0
        self.tune_malloc = tune_malloc
        self.view = TrainingView.open(location, storage_options, array)
        v = self.view
        self.num_rows, self.chunk_rows, self.has_meta = v.num_rows, v.chunk_rows, v.has_meta
        self.has_segments, self.bfloat16 = v.has_segments, v.bfloat16
        self._arrays: dict[str, zarr.Array] | None = None
        self._features: ChunkReader | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if not self._given:  # a process group made after the dataset: taken here, in the rank's process
            self._rank, self._world = dist_shard()

    @property
    def num_items(self) -> int:
        """What a batch is made of: rows here, segments in ``SegmentDataset``."""
        return self.num_rows

    def __len__(self) -> int:
        n = self.num_items / self.batch_size
        return int(n) if self.drop_last else math.ceil(n)

    @property
    def rank(self) -> int:
        return self.shard()[0]

    def shard(self) -> tuple[int, int]:
        """``(rank, world size)``: as given, else ``torch.distributed``'s (DDP) as it was when the
        dataset was made or ``set_epoch`` last ran in the rank's own process (DataLoader workers
        have no process group of their own), else ``(0, 1)``."""
        if self._rank is None and get_worker_info() is None:
            self._rank, self._world = dist_shard()
        return (self._rank, self._world) if self._rank is not None else (0, 1)

    def _chunks(self) -> list[int]:
        """This rank's and this worker's chunks, in this epoch's order: the epoch's chunk order is
        the same on every rank (same seed), and ranks, then workers, take every n-th chunk of it,
        so each row is read exactly once per epoch across all of them (ranks may differ by a
        chunk's rows; use ``drop_last`` or equal steps in the training loop)."""
        n = math.ceil(self.num_rows / self.chunk_rows)
        order = np.arange(n)
        if self.shuffle:
            np.random.default_rng((self.seed, self.epoch)).shuffle(order)
        rank, world = self.shard()
        order = order[rank::world]
        info = get_worker_info()
        if info is not None:
            order = order[info.id :: info.num_workers]
        return order.tolist()

    def _read(self, c: int) -> dict[str, np.ndarray]:
        a = self._arrays
        lo, hi = c * self.chunk_rows, min((c + 1) * self.chunk_rows, self.num_rows)
        out = {"features": self._features.read(c), "index": np.arange(lo, hi)}
        if self.has_meta:
            out["video"] = a["segment_to_video"][lo:hi]
            out["timestamps"] = a["timestamps"][lo:hi]
        if self.has_segments:
            out["segment"] = a["segment"][lo:hi]
        return out

    def __iter__(self):
        if self._arrays is None:  # opened lazily, once per worker process (each lookup reads metadata)
            if self.tune_malloc:
                tune_malloc()
            self._arrays = self.view.columns()
            self._features = ChunkReader(self._arrays["features"], self.num_rows)
            for k in ("segment_to_video", "timestamps", "segment"):  # a few bytes a row: read once, not per chunk
                if k in self._arrays and self._arrays[k].nbytes <= SMALL_COLUMNS_BYTES:
                    self._arrays[k] = self._arrays[k][: self.num_rows]
        info = get_worker_info()
        if info is not None and info.id == 0 and self.epoch == 0 and self.batch_size < 16:
            warnings.warn(SLOW_HANDOVER.format(self.batch_size), stacklevel=2)
        if info is not None:
            # in a DataLoader worker, batches go to the training process as handles to the pool's
            # shared memory; by file name (cached there: the pool is mapped once) rather than by a
            # file descriptor passed per batch (~3 ms each here). Only this worker's sending changes.
            torch.multiprocessing.set_sharing_strategy("file_system")
        rng = np.random.default_rng((self.seed, self.epoch, self.rank, info.id if info else 0))
        chunks = self._chunks()
        carry: dict[str, torch.Tensor] | None = None
        # chunk reads (file I/O + blosc, GIL released) run ahead on read_threads threads, in order
        for parts in self._pools(self._read, chunks, self.shuffle_buffer):
            if carry is not None:
                parts.insert(0, {k: v.numpy() for k, v in carry.items()})
            sizes = [len(p["index"]) for p in parts]
            offsets = np.concatenate([[0], np.cumsum(sizes)])
            n = int(offsets[-1])
            order = rng.permutation(n) if self.shuffle else np.arange(n)
            pool = permuted_pool(parts, offsets, order, shared=info is not None)
            full = n - n % self.batch_size
            for i in range(0, full, self.batch_size):
                yield self._tensors({k: v[i : i + self.batch_size] for k, v in pool.items()})
            carry = {k: v[full:] for k, v in pool.items()} if full < n else None
        if carry is not None and not self.drop_last:
            yield self._tensors(carry)

    def _tensors(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.bfloat16:  # stored as uint16 bits: a free reinterpretation
            batch = {**batch, "features": batch["features"].view(torch.bfloat16)}
        return batch


def dist_shard() -> tuple[int | None, int | None]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return None, None


class SegmentDataset(ClipDataset):
    """Batches of whole segments from the videos a ``segments`` plan sampled: the seed notes'
    ``[segments, 20 frames, D]`` layout with its segment -> video map, read from a training view.

    Yields dicts: ``features [b, L, crops, D]`` (a segment's rows, zero-padded to the longest
    segment ``L``), ``lengths [b]``, ``timestamps [b, L, 2]``, ``video [b]`` (index into the view's
    videos table), ``segment [b]`` (the segment's index in its video), ``index [b]`` (the segment's
    number in this dataset) and, when the view has captions, ``caption_embedding [b, Dt]`` with
    ``has_caption [b]`` (one caption per video, shared by its segments). With ``frames_per_clip=1``
    a row is one frame, so ``L`` is the plan's frames per segment; with the fitted default (a
    segment is one clip) ``L`` is 1. Rows of other plans are left out; a view with none raises.

    Reading is ``ClipDataset``'s: whole chunks in shuffled order, every segment once per epoch, mixed
    across ``shuffle_buffer`` chunks. A chunk carries the segments that start in it (the last may
    run into the next chunk: read with it).
    """

    def __init__(self, location: str | os.PathLike[str], **kwargs) -> None:
        super().__init__(location, **kwargs)
        if not self.has_segments:
            raise ValueError(f"{location} has no segment column: it was built before layout 2; re-run training_view")
        n = self.num_rows
        columns = self.view.columns(("segment", "segment_to_video"))
        segment, video = columns["segment"][:n], columns["segment_to_video"][:n]
        edges = np.flatnonzero((np.diff(segment) != 0) | (np.diff(video) != 0)) + 1
        bounds = np.r_[0, edges, n] if n else np.zeros(1, np.int64)
        keep = segment[bounds[:-1]] >= 0
        self.starts, self.ends = bounds[:-1][keep], bounds[1:][keep]
        if not len(self.starts):
            raise ValueError(f"no video in {location} was sampled with a segments plan (SamplingPlan.segments)")
        self.video, self.segment = video[self.starts], segment[self.starts]
        self.max_rows = int((self.ends - self.starts).max())
        # segments of chunk c (those starting in it): self._first[c] : self._first[c + 1]
        chunks = math.ceil(n / self.chunk_rows)
        self._first = np.searchsorted(self.starts // self.chunk_rows, np.arange(chunks + 1))
        table = self.view.videos_table()
        self._captions = (table["caption_embedding"], table["has_caption"]) if "has_caption" in table else None

    @property
    def num_items(self) -> int:
        return len(self.starts)

    def _read(self, c: int) -> dict[str, np.ndarray]:
        a, b = int(self._first[c]), int(self._first[c + 1])
        feats_in, times_in = self._arrays["features"], self._arrays["timestamps"]
        if b > a:
            lo, hi = int(self.starts[a]), int(self.ends[b - 1])
            rows, times = feats_in[lo:hi], times_in[lo:hi]
        else:  # no segment starts in this chunk: nothing to read
            lo, rows, times = 0, np.zeros((0, *feats_in.shape[1:]), feats_in.dtype), np.zeros((0, 2))
        feats = np.zeros((b - a, self.max_rows, *rows.shape[1:]), rows.dtype)
        stamps = np.zeros((b - a, self.max_rows, 2), times.dtype)
        for j, (s, e) in enumerate(zip(self.starts[a:b] - lo, self.ends[a:b] - lo, strict=True)):
            feats[j, : e - s], stamps[j, : e - s] = rows[s:e], times[s:e]
        out = {
            "features": feats,
            "lengths": self.ends[a:b] - self.starts[a:b],
            "timestamps": stamps,
            "video": self.video[a:b],
            "segment": self.segment[a:b],
            "index": np.arange(a, b),
        }
        if self._captions is not None:
            out["caption_embedding"] = self._captions[0][self.video[a:b]]
            out["has_caption"] = self._captions[1][self.video[a:b]]
        return out


class LatentCaptionDataset(ClipDataset):
    """Seed 003's training input: ``(latents, caption_embedding)`` batches from a view of per-frame
    latents (a VAE set: rows ``[1 crop, 20 frames, 4, 32, 32]``), each segment's caption found
    through ``segment_to_video`` in the videos table (one caption per video, no copies).

    Reading is ``ClipDataset``'s (whole chunks, shuffled, read ahead on threads), so::

        ds = LatentCaptionDataset("data/features_vae_training.zarr", batch_size=64)
        for latents, captions in ds.loader(num_workers=2, pin_memory=True):
            ...  # latents [64, 20, 4, 32, 32] float16, captions [64, 512] float16

    A single crop's axis is dropped; videos without a caption get zeros (``has_caption`` in the
    view tells them apart)."""

    def __init__(self, location: str | os.PathLike[str], **kwargs) -> None:
        super().__init__(location, **kwargs)
        if not self.has_meta:
            raise ValueError(f"{location} has no segment_to_video column: build it with the training_view asset")
        table = self.view.videos_table()
        if "caption_embedding" not in table:
            raise ValueError(
                f"no video in {location} has a caption: register videos with captions (a manifest's caption "
                "column) and set the feature set's text_model"
            )
        self.captions = np.ascontiguousarray(table["caption_embedding"])

    def __iter__(self):
        for batch in super().__iter__():
            latents = batch["features"]
            if latents.shape[1] == 1:
                latents = latents[:, 0]
            yield latents, torch.from_numpy(self.captions[batch["video"].numpy()])


class VideoDataset(Dataset):
    """One item per video of a training view: all its clips, their timestamps, its caption (and
    each clip's segment, for a ``segments`` plan)."""

    def __init__(self, location: str | os.PathLike[str], storage_options: dict | None = None) -> None:
        self.view = TrainingView.open(location, storage_options)
        self.table = self.view.videos_table()
        self.bfloat16, self.has_segments = self.view.bfloat16, self.view.has_segments
        self._arrays: dict[str, zarr.Array] | None = None

    def __len__(self) -> int:
        return len(self.table["id"])

    def __getitem__(self, i: int) -> dict[str, Any]:
        if self._arrays is None:  # opened lazily, once per worker (each lookup reads metadata)
            names = ("features", "timestamps", "segment") if self.has_segments else ("features", "timestamps")
            self._arrays = self.view.columns(names)
        a, t = self._arrays, self.table
        lo = int(t["row_start"][i])
        hi = lo + int(t["row_count"][i])
        feats = torch.from_numpy(a["features"][lo:hi])
        if self.bfloat16:
            feats = feats.view(torch.int16).view(torch.bfloat16)
        item = {
            "video_id": str(t["id"][i]),
            "features": feats,
            "timestamps": torch.from_numpy(a["timestamps"][lo:hi]),
        }
        if "caption_embedding" in t and bool(t["has_caption"][i]):
            item["caption_embedding"] = torch.from_numpy(np.asarray(t["caption_embedding"][i]))
        if self.has_segments and hi > lo:
            segments = a["segment"][lo:hi]
            if segments[0] >= 0:  # a segments plan
                item["segments"] = torch.from_numpy(segments)
        return item
