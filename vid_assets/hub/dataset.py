"""Training from the published dataset: ``data/clips-*.parquet`` as ``hub_dataset`` writes it,
read like :class:`vid_assets.loader.ClipDataset` reads a Zarr view."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from vid_assets.loader import dist_shard
from vid_assets.runtime.reader_threads import ThreadedLoading


class HubClipDataset(ThreadedLoading, IterableDataset):
    """Batches of the dataset ``hub_dataset`` publishes: its ``data/clips-*.parquet`` shards, read
    from ``hf://datasets/<org>/<name>[@revision]`` (huggingface_hub's filesystem; the token from
    the usual ``HF_TOKEN`` / login), a local mirror or download of the repo, or any fsspec URL.

    Yields dicts: ``features`` float32 ``[b, D]`` (the ``embedding`` column), ``start_s``,
    ``end_s``, ``clip_index`` (and ``segment`` for segments plans) tensors, and ``video_id`` (a list
    of str). The unit of reading is a Parquet row group: their order is shuffled per epoch, rows
    mixed across ``shuffle_buffer`` of them, and ranks (DDP) then DataLoader workers take every
    n-th, so each row is read once per epoch, as ``ClipDataset`` does for a Zarr view."""

    def __init__(
        self,
        location: str | os.PathLike[str],
        *,
        batch_size: int = 256,
        shuffle: bool = True,
        shuffle_buffer: int = 2,
        seed: int = 0,
        storage_options: dict | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        import fsspec
        import pyarrow.parquet as pq

        self.location, self.storage_options = os.fspath(location), storage_options or {}
        self.batch_size, self.shuffle, self.shuffle_buffer, self.seed = (
            batch_size,
            shuffle,
            max(1, shuffle_buffer),
            seed,
        )
        self.epoch = 0
        self._given = rank is not None and world_size is not None
        self._rank, self._world = (rank, world_size) if self._given else dist_shard()
        fs, root = fsspec.core.url_to_fs(self.location, **self.storage_options)
        self.files = sorted(fs.glob(f"{root.rstrip('/')}/data/*.parquet"))
        if not self.files:
            raise ValueError(f"no data/*.parquet under {self.location}: not a dataset hub_dataset published")
        self.units: list[tuple[int, int]] = []  # (file, row group)
        self.num_rows = 0
        for f, path in enumerate(self.files):
            with fs.open(path, "rb") as fh:
                meta = pq.ParquetFile(fh).metadata
            self.units += [(f, g) for g in range(meta.num_row_groups)]
            self.num_rows += meta.num_rows

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if not self._given:
            self._rank, self._world = dist_shard()

    def _units(self) -> list[tuple[int, int]]:
        order = np.arange(len(self.units))
        if self.shuffle:
            np.random.default_rng((self.seed, self.epoch)).shuffle(order)
        rank, world = (self._rank, self._world) if self._rank is not None else (0, 1)
        order = order[rank::world]
        info = get_worker_info()
        if info is not None:
            order = order[info.id :: info.num_workers]
        return [self.units[i] for i in order]

    def _read(self, fs, unit: tuple[int, int]) -> dict[str, np.ndarray]:
        import pyarrow.parquet as pq

        f, group = unit
        with fs.open(self.files[f], "rb") as fh:
            table = pq.ParquetFile(fh).read_row_group(group)
        emb = table.column("embedding").combine_chunks()
        out = {"features": emb.values.to_numpy().reshape(len(table), -1).astype(np.float32, copy=False)}
        for name in ("clip_index", "start_s", "end_s", "segment"):
            if name in table.column_names:
                out[name] = table.column(name).to_numpy()
        out["video_id"] = np.asarray(table.column("video_id").to_pylist(), dtype=object)
        return out

    def __iter__(self):
        import fsspec

        fs, _ = fsspec.core.url_to_fs(self.location, **self.storage_options)
        info = get_worker_info()
        rank = self._rank or 0
        rng = np.random.default_rng((self.seed, self.epoch, rank, info.id if info else 0))
        units = self._units()
        carry = None
        for parts in self._pools(lambda u: self._read(fs, u), units, self.shuffle_buffer):
            if carry is not None:
                parts.insert(0, carry)
            pool = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
            n = len(pool["features"])
            order = rng.permutation(n) if self.shuffle else np.arange(n)
            pool = {k: v[order] for k, v in pool.items()}
            full = n - n % self.batch_size
            for i in range(0, full, self.batch_size):
                yield self._batch({k: v[i : i + self.batch_size] for k, v in pool.items()})
            carry = {k: v[full:] for k, v in pool.items()} if full < n else None
        if carry is not None:
            yield self._batch(carry)

    @staticmethod
    def _batch(rows: dict[str, np.ndarray]) -> dict:
        out = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in rows.items() if k != "video_id"}
        out["video_id"] = rows["video_id"].tolist()
        return out
