"""Whole-chunk reads of local Zarr v3 arrays without Zarr's per-call machinery.

A training loader reads whole chunks, one after another, as fast as memory allows. Zarr's own read
of one 10 MB chunk (a VAE set's 64 segments) took 9.5 ms on the 2-core VM: its async round trip,
then a decode into a buffer and a copy into the output. The file read into a buffer plus Blosc's
decode straight into the output array took 2.4 ms (``benchmarks/RESULTS.md``). :class:`ChunkReader`
does that for the layouts our stores write (regular chunks along axis 0, the default chunk key
encoding, ``bytes`` + optional Blosc, no sharding) and hands everything else back to Zarr, so it
is always correct and fast where it can be.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import zarr


class ChunkReader:
    """``read(c)``: rows ``c * chunk_rows`` .. of ``array`` (at most ``num_rows``) as numpy."""

    def __init__(self, array: zarr.Array, num_rows: int | None = None) -> None:
        self.array = array
        self.num_rows = array.shape[0] if num_rows is None else num_rows
        self.chunk_rows = int(array.chunks[0])
        self._root = self._local_root(array)
        self._blosc, self._local = None, threading.local()  # a read buffer per reading thread
        if self._root is not None:
            from numcodecs import Blosc

            self._blosc = Blosc()

    def __getstate__(self) -> dict:  # sent to DataLoader worker processes: buffers are per thread
        return {**self.__dict__, "_local": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _local=threading.local())

    @staticmethod
    def _local_root(array: zarr.Array) -> Path | None:
        """The array's folder when its chunks are plain files this reader can decode, else None."""
        meta = array.metadata
        store = array.store_path.store
        if getattr(meta, "zarr_format", 2) != 3 or not isinstance(store, zarr.storage.LocalStore):
            return None
        if tuple(array.chunks[1:]) != tuple(array.shape[1:]):  # chunked along rows only
            return None
        encoding = meta.chunk_key_encoding
        if type(encoding).__name__ != "DefaultChunkKeyEncoding" or encoding.separator != "/":
            return None
        names = [type(c).__name__ for c in meta.codecs]
        if names not in (["BytesCodec"], ["BytesCodec", "BloscCodec"]):
            return None
        endian = getattr(meta.codecs[0], "endian", None)
        if array.dtype.itemsize > 1 and getattr(endian, "value", sys.byteorder) != sys.byteorder:
            return None
        return Path(store.root) / array.store_path.path

    def read(self, c: int) -> np.ndarray:
        lo, hi = c * self.chunk_rows, min((c + 1) * self.chunk_rows, self.num_rows)
        if self._root is None:
            return self.array[lo:hi]
        path = self._root / "c" / "/".join([str(c)] + ["0"] * (self.array.ndim - 1))
        try:
            with open(path, "rb", buffering=0) as f:  # into one reused buffer: no fresh pages per chunk
                size = f.seek(0, 2)
                f.seek(0)
                buf = getattr(self._local, "buf", b"")
                if len(buf) < size:
                    buf = self._local.buf = bytearray(size)
                raw = memoryview(buf)[: f.readinto(memoryview(buf)[:size])]
        except FileNotFoundError:  # an unwritten chunk is the fill value: Zarr knows it
            return self.array[lo:hi]
        out = np.empty((self.chunk_rows, *self.array.shape[1:]), dtype=self.array.dtype)  # edge chunks are stored full
        if self._blosc is not None:
            self._blosc.decode(raw, out=out)
        else:
            out.reshape(-1).view(np.uint8)[:] = np.frombuffer(raw, dtype=np.uint8)
        return out[: hi - lo]
