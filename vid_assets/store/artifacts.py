"""Per-partition intermediate arrays (frames, clip tensors, raw features).

Dagster's default IO manager would pickle whole tensors; instead each asset streams compact arrays
(uint8 pixels, float16 features) into ``<root>/<asset>/<partition>.zarr`` and downstream assets read
them back chunk by chunk. Location is configured once, on the resource that owns this object.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import zarr

from vid_assets.store.atomic import atomic_dir


class ArtifactStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, asset: str, key: str) -> Path:
        return self.root / asset / f"{key}.zarr"

    @contextmanager
    def writer(self, asset: str, key: str) -> Iterator[zarr.Group]:
        """A new group, visible at :meth:`path` only once the block exits cleanly."""
        final = self.path(asset, key)
        with atomic_dir(final, self.root / asset) as tmp:
            yield zarr.open_group(zarr.storage.LocalStore(tmp), mode="w", zarr_format=3)

    def open(self, asset: str, key: str) -> zarr.Group:
        p = self.path(asset, key)
        if not (p / "zarr.json").exists():
            raise FileNotFoundError(f"no {asset} artifact for partition {key!r} at {p}; materialize it first")
        return zarr.open_group(zarr.storage.LocalStore(p, read_only=True), mode="r")

    def exists(self, asset: str, key: str) -> bool:
        return (self.path(asset, key) / "zarr.json").exists()
