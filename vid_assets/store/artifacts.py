"""Per-partition intermediate arrays (frames, clip tensors, features), kept only when asked for.

A run of the whole chain streams each video through the engine and writes nothing here. A run of
part of it (decode only, or embeddings + store after a model change) keeps what the next part
reads, as compact arrays in ``<root>/<asset>/<partition>.zarr``; once a video is in the feature
store its intermediates are deleted (``discard``), unless the workspace keeps them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import zarr

from vid_assets.store.atomic import atomic_dir, collect, tree_bytes


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

    def discard(self, key: str, assets: tuple[str, ...] = ("frames", "clips", "embeddings")) -> int:
        """Delete ``key``'s intermediates (and its contact sheet); the bytes freed."""
        freed = 0
        for p in [*(self.path(a, key) for a in assets), self.root / "contact_sheets" / f"{key}.jpg"]:
            if p.exists():
                freed += tree_bytes(p)
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
        return freed

    def total_bytes(self) -> int:
        return tree_bytes(self.root)

    def collect(self, older_than_s: float = 0.0) -> int:
        """Remove crashed writers' leftovers; the bytes freed (see ``atomic.collect``)."""
        return collect(self.root, older_than_s)
