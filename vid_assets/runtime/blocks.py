"""A DataLoader whose workers hand over whole shuffle pools, split into batches in the training
process.

A ``DataLoader`` worker pays a fixed price per item it returns: an index message in, a pickled
result out, a wake-up of the training process (about 0.9 ms on the 2-vCPU VM, whatever the item
holds; benchmarks/RESULTS.md). With ``batch_size=1`` that price is paid per sample, so two workers
read 16x slower than none. Here a worker returns one *block* (a pool's worth of batches, already
shuffled, in shared memory) per message and the training process cuts it into views: the price is
paid once per few hundred samples, and the batches, their order inside a worker and their contents
are those of the plain per-batch path.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset


class BlockLoader(DataLoader):
    """``DataLoader(dataset, batch_size=None, **kwargs)`` for a dataset that can yield blocks
    (``ClipDataset`` and its kin, ``HubClipDataset``): the same batches, fewer hand-overs.

    With ``num_workers=0`` it is the plain loader (nothing crosses a process). The dataset is
    copied, so the caller's object keeps yielding plain batches elsewhere."""

    def __init__(self, dataset: IterableDataset, **kwargs: Any) -> None:
        if kwargs.pop("batch_size", None) is not None:
            raise ValueError("the dataset makes the batches (its batch_size); the loader takes none")
        dataset = copy.copy(dataset)
        dataset.blocks = bool(kwargs.get("num_workers", 0))
        super().__init__(dataset, batch_size=None, **kwargs)

    def __iter__(self) -> Iterator[Any]:
        batches = super().__iter__()
        if not self.dataset.blocks:
            yield from batches
            return
        size = self.dataset.batch_size
        for block in batches:
            yield from split_block(block, size)


def split_block(block: Any, size: int) -> list[Any]:
    """``block`` (a dict, tuple or list of tensors, arrays or lists, all ``n`` rows long) as
    ``ceil(n / size)`` batches of the same structure; tensors and arrays become views."""
    if isinstance(block, dict):
        keys = list(block)
        columns = [_split(block[k], size) for k in keys]
        return [dict(zip(keys, parts, strict=True)) for parts in zip(*columns, strict=True)]
    if isinstance(block, tuple):
        return [tuple(parts) for parts in zip(*(_split(v, size) for v in block), strict=True)]
    return _split(block, size)


def _split(column: Any, size: int) -> list[Any]:
    if isinstance(column, torch.Tensor):
        return list(torch.split(column, size))
    if isinstance(column, np.ndarray):
        return [column[i : i + size] for i in range(0, len(column), size)]
    if isinstance(column, list):
        return [column[i : i + size] for i in range(0, len(column), size)]
    raise TypeError(f"cannot split a block column of type {type(column).__name__}")
