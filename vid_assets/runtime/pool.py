"""A shuffle pool whose batches are views: rows of several chunks copied once, in a new order,
into one tensor per column (in shared memory inside a DataLoader worker)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

# column -> bytes wanted, to column -> uint8 tensor of at least that many bytes
Allocator = Callable[[dict[str, int]], dict[str, torch.Tensor]]


def permuted_pool(
    parts: list[dict[str, np.ndarray]], offsets: np.ndarray, order: np.ndarray, alloc: Allocator | None = None
) -> dict[str, torch.Tensor]:
    """The pool (the chunks in ``parts`` end to end) with its rows in ``order``, copied once into
    one tensor per column; batches are slices of it.

    Batches as views of one pool, not copies of their own, matter most in ``DataLoader`` workers:
    a batch crosses to the training process as a handle to memory it already shares (``alloc``
    gives shared memory there: fresh, ``new_shared``, or reused, ``runtime.blocks.SlotRing``), not
    as a fresh copy into a new shared-memory file per batch, which made batch-1 reading with 2
    workers 30x slower than with none (issue 24). Without ``alloc``, ordinary memory.
    """
    n = len(order)
    dest = np.empty(n, dtype=np.int64)
    dest[order] = np.arange(n)  # where each pool row lands
    dtypes = {k: np.dtype(v.dtype) for k, v in parts[0].items()}
    shapes = {k: (n, *v.shape[1:]) for k, v in parts[0].items()}
    nbytes = {k: int(np.prod(shapes[k], dtype=np.int64)) * dtypes[k].itemsize for k in shapes}
    raws = alloc(nbytes) if alloc else {k: torch.empty(b, dtype=torch.uint8) for k, b in nbytes.items()}
    out: dict[str, torch.Tensor] = {}
    for k, dtype in dtypes.items():
        raw = raws[k][: nbytes[k]]
        target = raw.numpy().view(dtype).reshape(shapes[k])
        for j, p in enumerate(parts):
            lo, hi = int(offsets[j]), int(offsets[j + 1])
            target[dest[lo:hi]] = p[k]  # one scattered copy per chunk
        out[k] = _as_tensor(raw, dtype, shapes[k])
    return out


def new_shared(nbytes: dict[str, int]) -> dict[str, torch.Tensor]:
    """Fresh shared memory per column, as DataLoader's own collate makes its batches."""
    return {k: torch.empty(0, dtype=torch.uint8).set_(torch.UntypedStorage._new_shared(b)) for k, b in nbytes.items()}


def _as_tensor(raw: torch.Tensor, dtype: np.dtype, shape: tuple) -> torch.Tensor:
    """``raw`` bytes as a torch tensor of numpy ``dtype`` (a view: the storage stays ``raw``'s)."""
    torch_dtype = torch.from_numpy(np.empty(0, dtype=dtype)).dtype
    return raw.view(torch_dtype).view(shape)
