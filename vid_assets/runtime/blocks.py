"""A DataLoader whose workers hand over whole shuffle pools, split into batches in the training
process.

A ``DataLoader`` worker pays a fixed price per item it returns: an index message in, a pickled
result out, a wake-up of the training process (about 0.9 ms on the 2-vCPU VM, whatever the item
holds; benchmarks/RESULTS.md). With ``batch_size=1`` that price is paid per sample, so two workers
read 16x slower than none. Here a worker returns one *block* (a pool's worth of batches, already
shuffled) per message and the training process cuts it into views: the price is paid once per few
hundred samples, and the batches, their order inside a worker and their contents are those of the
plain per-batch path.

The pool itself is written into shared memory the worker reuses (``SlotRing``): fresh shared memory
costs a page fault per 4 KiB written (a 21-MB pool of VAE latents took 15.7 ms to fill against
1.5 ms in reused memory on the 2-vCPU VM). The training process copies a block out into its own
memory (or ``pin_memory`` does) and frees the slot, so the batches it hands on are its own.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from vid_assets.runtime.memory import tune_malloc
from vid_assets.runtime.pool import new_shared


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
        if getattr(self.dataset, "tune_malloc", False):
            tune_malloc()  # the copies out of the slots reuse freed memory instead of faulting fresh pages
        size = self.dataset.batch_size
        for block in batches:
            yield from split_block(block.take() if isinstance(block, Block) else block, size)


class Block:
    """A pool handed over from a worker: views of one of its ``SlotRing`` slots. ``take()`` (in
    the training process) returns the data as the process's own copy and frees the slot; a block
    dropped untaken (an abandoned epoch) frees it when collected. ``pin_memory`` copies too, so a
    pinned block is free of the slot from the start."""

    def __init__(self, data: Any, flags: torch.Tensor | None, slot: int) -> None:
        self.data, self.flags, self.slot = data, flags, slot
        self.received = False  # only the receiving process frees: the worker's own object dies once sent

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "received": True}

    def take(self) -> Any:
        data = self.data if self.flags is None else _map(self.data, torch.clone)
        self._free()
        return data

    def pin_memory(self, device: Any = None) -> Block:
        pinned = Block(_map(self.data, torch.Tensor.pin_memory), None, -1)
        self._free()
        return pinned

    def _free(self) -> None:
        if self.flags is not None and self.received:
            self.flags[self.slot] = 0
            self.flags = None

    def __del__(self) -> None:
        self._free()


class SlotRing:
    """Worker side: a few shared-memory buffers reused for pools. A slot is busy from ``take`` until
    the training process frees it (a flag in shared memory). When all ``slots`` are busy (the
    training process holds more blocks than the DataLoader prefetches), a pool gets fresh shared
    memory instead of waiting: never a stall, at most ``slots`` buffers kept."""

    def __init__(self, slots: int = 8) -> None:
        self.flags = torch.zeros(slots, dtype=torch.int32).share_memory_()
        self.buffers: list[dict[str, torch.Tensor]] = []
        self.last = -1

    def alloc(self, nbytes: dict[str, int]) -> dict[str, torch.Tensor]:
        """Buffers of at least ``nbytes`` per column (a ``pool.Allocator``); ``block`` hands them over."""
        self.last, buffers = self.take(nbytes)
        return buffers

    def block(self, data: Any) -> Block:
        """``data`` (views of the buffers ``alloc`` gave last) as a block to hand over."""
        return Block(data, self.flags if self.last >= 0 else None, self.last)

    def take(self, nbytes: dict[str, int]) -> tuple[int, dict[str, torch.Tensor]]:
        """A slot (or -1: fresh memory) with at least ``nbytes`` per column, marked busy."""
        free = [i for i in range(len(self.buffers)) if int(self.flags[i]) == 0]
        if free:
            i = free[0]
        elif len(self.buffers) < len(self.flags):
            i = len(self.buffers)
            self.buffers.append({})
        else:
            return -1, new_shared(nbytes)
        have = self.buffers[i]
        grow = {k: b for k, b in nbytes.items() if k not in have or have[k].numel() < b}
        have.update(new_shared({k: b + b // 4 for k, b in grow.items()}))  # headroom: pools vary a little
        self.flags[i] = 1
        return i, have


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


def _map(data: Any, fn: Any) -> Any:
    """``fn`` over the tensors of a dict / tuple / list / tensor; anything else is kept as it is."""
    if isinstance(data, torch.Tensor):
        return fn(data)
    if isinstance(data, dict):
        return {k: _map(v, fn) for k, v in data.items()}
    if isinstance(data, (tuple, list)):
        return type(data)(_map(v, fn) for v in data)
    return data


def _split(column: Any, size: int) -> list[Any]:
    if isinstance(column, torch.Tensor):
        return list(torch.split(column, size))
    if isinstance(column, np.ndarray):
        return [column[i : i + size] for i in range(0, len(column), size)]
    if isinstance(column, list):
        return [column[i : i + size] for i in range(0, len(column), size)]
    raise TypeError(f"cannot split a block column of type {type(column).__name__}")
