"""Reading a training view: the one door over its Zarr layout, for the loaders.

A view (``store/training.py`` writes it) is a group of row-aligned columns (``features``,
``timestamps``, ``segment_to_video``, ``segment``) plus a ``videos`` table, committed by its
``num_rows`` / ``num_videos`` attributes. :meth:`TrainingView.open` reads that metadata only;
:meth:`TrainingView.columns` opens the arrays (once per worker process: each lookup reads
metadata), so a loader never names a Zarr path or attribute itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import zarr

ROW_COLUMNS = ("segment_to_video", "timestamps", "segment")  # a few bytes a row, beside the features


def open_group(location: str | os.PathLike[str], storage_options: dict | None = None) -> zarr.Group:
    """Read-only Zarr group from a local path or an fsspec URL (``s3://``, ``hf://``, ``memory://``)."""
    loc = os.fspath(location)
    if "://" in loc and not loc.startswith("file://"):
        store = zarr.storage.FsspecStore.from_url(loc, read_only=True, storage_options=storage_options or {})
    else:
        store = zarr.storage.LocalStore(loc.removeprefix("file://"), read_only=True)
    return zarr.open_group(store=store, mode="r")


@dataclass(frozen=True)
class TrainingView:
    location: str | os.PathLike[str]
    storage_options: dict | None
    array: str  # the rows' column: ``features`` unless a caller reads another
    num_rows: int  # committed rows (a crashed append's extra rows are not counted)
    chunk_rows: int
    has_meta: bool  # ``segment_to_video`` and ``timestamps`` per row
    has_segments: bool  # ``segment`` per row (views since layout 2)
    bfloat16: bool  # features stored as bfloat16 bits in uint16

    @classmethod
    def open(
        cls, location: str | os.PathLike[str], storage_options: dict | None = None, array: str = "features"
    ) -> TrainingView:
        g = open_group(location, storage_options)
        arr, names = g[array], set(g.array_keys())
        return cls(
            location=location,
            storage_options=storage_options,
            array=array,
            num_rows=int(g.attrs.get("num_rows", arr.shape[0])),  # honour the commit marker
            chunk_rows=int(arr.chunks[0]),
            has_meta={"segment_to_video", "timestamps"} <= names,
            has_segments="segment" in names,
            bfloat16=array == "features" and g.attrs.get("dtype") == "bfloat16",
        )

    def columns(self, names: tuple[str, ...] | None = None) -> dict[str, zarr.Array]:
        """The row columns (default: the rows' array as ``features`` plus the row columns it has),
        opened; slice them (``[lo:hi]``) to read."""
        g = open_group(self.location, self.storage_options)
        if names is None:
            present = set(g.array_keys())
            return {"features": g[self.array], **{k: g[k] for k in ROW_COLUMNS if k in present}}
        return {k: g[self.array if k == "features" else k] for k in names}

    def videos_table(self) -> dict[str, np.ndarray]:
        """The committed ``videos`` table as columns (id, source, row_start, row_count, captions ...)."""
        from vid_assets.store.training import read_videos_table

        return read_videos_table(open_group(self.location, self.storage_options))
