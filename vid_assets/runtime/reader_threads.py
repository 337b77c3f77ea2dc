"""Loader "workers" as reader threads of the training process.

A store's samples are ready tensors: reading them is file I/O and decompression, which release the
GIL. DataLoader worker processes add a hand-over per batch (a pickle, a shared-memory handle, a
wake-up of the training process) that at small batches costs more than the reading itself, so the
datasets' ``loader()`` reads on threads instead (benchmarks/RESULTS.md, issue 24).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from torch.utils.data import DataLoader

from vid_assets.runtime.prefetch import grouped, parallel_map

SLOW_HANDOVER = (
    "DataLoader worker processes hand each {}-row batch to training by pickle, ~1 ms apiece whatever its "
    "size: at small batches that, not reading, sets the pace (1/20 of no workers at batch 1 on 2 vCPUs). "
    "ds.loader(num_workers=N) reads on threads instead, as fast as no workers."
)


class ThreadedLoading:
    """``loader()`` for datasets that read ahead on ``read_threads`` threads (``read_ahead`` items)."""

    read_threads: int = 1
    read_ahead: int | None = None

    def loader(self, num_workers: int = 0, prefetch_factor: int | None = None, **kwargs: Any) -> DataLoader:
        """The ``DataLoader`` to train with: ``num_workers`` chunk readers as threads of the training
        process (reads and Blosc release the GIL), each ``prefetch_factor`` (default 2) chunks
        ahead; other arguments (``pin_memory``...) as ``DataLoader``'s; the batches and their order
        are those of no workers (this dataset's readers are set). Worker processes (a plain
        ``DataLoader(ds, batch_size=None, num_workers=N)``) hand each batch over by pickle: see
        ``SLOW_HANDOVER``."""
        kwargs.pop("persistent_workers", None)  # threads start in microseconds: nothing to keep
        if kwargs.pop("batch_size", None) is not None:
            raise ValueError("the dataset makes the batches (its batch_size); the loader takes none")
        self.read_threads, self.read_ahead = max(1, num_workers), max(1, num_workers) * (prefetch_factor or 2)
        return DataLoader(self, batch_size=None, num_workers=0, **kwargs)

    def _pools(self, read: Callable[[Any], dict], units: Iterable, per_pool: int) -> Iterator[list[dict]]:
        """``read`` over ``units`` on the reader threads, ahead and in order, in lists of
        ``per_pool`` (a shuffle pool's worth)."""
        ahead = self.read_ahead or max(self.read_threads, per_pool) + 1
        return grouped(parallel_map(read, units, self.read_threads, ahead), per_pool)
