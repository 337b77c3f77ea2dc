"""Small zarr v3 helpers shared by the feature store and the artifact store."""

from __future__ import annotations

import numpy as np
import zarr
from zarr.codecs import BloscCodec


def blosc(level: int = 5, cname: str = "zstd") -> BloscCodec:
    """Blosc (zstd by default) with byte shuffle. ``level=0`` stores blocks uncompressed (fastest
    reads when the data does not compress, e.g. random-like latents)."""
    return BloscCodec(cname=cname, clevel=level, shuffle="shuffle")


class ArrayAppender:
    """Append rows to a zarr array in whole chunks, creating it on the first flush.

    Keeps at most ``chunk_rows`` rows in memory, which is what bounds memory for streamed decode.
    """

    def __init__(self, group: zarr.Group, name: str, chunk_rows: int, dtype, level: int = 3) -> None:
        self.group, self.name, self.chunk_rows, self.dtype, self.level = group, name, chunk_rows, dtype, level
        self.rows: list[np.ndarray] = []
        self.array: zarr.Array | None = None
        self.count = 0

    def add(self, row: np.ndarray) -> None:
        self.rows.append(np.asarray(row, dtype=self.dtype))
        if len(self.rows) >= self.chunk_rows:
            self.flush()

    def flush(self, final: bool = False) -> None:
        if not self.rows:
            return
        block = np.stack(self.rows)
        self.rows = []
        if self.array is None:  # created with its first block: one metadata write, not two
            # an array that is one block in all (a short video) gets a chunk of exactly that size:
            # zarr stores edge chunks full-size, so a 4-frame video would compress 16 frames
            rows = len(block) if final else self.chunk_rows
            self.array = self.group.create_array(
                self.name, data=block, chunks=(rows, *block.shape[1:]), compressors=blosc(self.level)
            )
        else:
            self.array.append(block, axis=0)
        self.count += len(block)

    def close(self, empty_shape: tuple[int, ...] | None = None) -> zarr.Array | None:
        """Flush; if nothing was ever added and ``empty_shape`` is given, create an empty array."""
        self.flush(final=True)
        if self.array is None and empty_shape is not None:
            self.array = self.group.create_array(
                self.name, shape=(0, *empty_shape), chunks=(self.chunk_rows, *empty_shape), dtype=self.dtype
            )
        return self.array
