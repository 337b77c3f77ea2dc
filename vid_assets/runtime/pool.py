"""A shuffle pool whose batches are views: rows of several chunks copied once, in a new order,
into one tensor per column (in shared memory inside a DataLoader worker)."""

from __future__ import annotations

import numpy as np
import torch


def permuted_pool(
    parts: list[dict[str, np.ndarray]], offsets: np.ndarray, order: np.ndarray, shared: bool
) -> dict[str, torch.Tensor]:
    """The pool (the chunks in ``parts`` end to end) with its rows in ``order``, copied once into
    one tensor per column; batches are slices of it.

    Batches as views of one pool, not copies of their own, matter most in ``DataLoader`` workers:
    a batch crosses to the training process as a handle to memory it already shares (``shared``:
    the pool is allocated in shared memory), not as a fresh copy into a new shared-memory file per
    batch, which made batch-1 reading with 2 workers 30x slower than with none (issue 24).
    """
    n = len(order)
    dest = np.empty(n, dtype=np.int64)
    dest[order] = np.arange(n)  # where each pool row lands
    out: dict[str, torch.Tensor] = {}
    for k, v in parts[0].items():
        dtype = np.dtype(v.dtype)
        nbytes = n * int(np.prod(v.shape[1:], dtype=np.int64)) * dtype.itemsize
        if shared:  # made in shared memory, as DataLoader's own collate makes its batches there
            raw = torch.empty(0, dtype=torch.uint8).set_(torch.UntypedStorage._new_shared(nbytes))
        else:
            raw = torch.empty(nbytes, dtype=torch.uint8)
        target = raw.numpy().view(dtype).reshape(n, *v.shape[1:])
        for j, p in enumerate(parts):
            lo, hi = int(offsets[j]), int(offsets[j + 1])
            target[dest[lo:hi]] = p[k]  # one scattered copy per chunk
        out[k] = _as_tensor(raw, dtype, (n, *v.shape[1:]))
    return out


def _as_tensor(raw: torch.Tensor, dtype: np.dtype, shape: tuple) -> torch.Tensor:
    """``raw`` bytes as a torch tensor of numpy ``dtype`` (a view: the storage stays ``raw``'s)."""
    torch_dtype = torch.from_numpy(np.empty(0, dtype=dtype)).dtype
    return raw.view(torch_dtype).view(shape)
