"""A background-thread prefetcher: the producer (zarr reads, decoding) runs ahead of the consumer.

Zarr/blosc reads, file I/O and FFmpeg decoding release the GIL, so on two cores the next item is
produced while the current one is consumed.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")
_DONE = object()


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Iterate ``items`` from a background thread, ``depth`` items ahead. Errors re-raise here."""
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def run() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put(item)
            q.put(_DONE)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put(e)

    th = threading.Thread(target=run, name="vid_assets-prefetch", daemon=True)
    th.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while th.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                th.join(timeout=0.05)


def put_unless(q: queue.Queue, item, stop: threading.Event, poll_s: float = 0.1) -> bool:
    """Put ``item`` on a bounded queue, waiting for room, unless ``stop`` is set first (then
    False): a producer whose consumer gave up never blocks for ever."""
    while not stop.is_set():
        try:
            q.put(item, timeout=poll_s)
            return True
        except queue.Full:
            continue
    return False


def parallel_map(fn: Callable[[T], R], items: Iterable[T], threads: int, ahead: int | None = None) -> Iterator[R]:
    """``fn`` over ``items`` on ``threads`` background threads, results in ``items``' order, at most
    ``ahead`` (default ``threads + 1``) started before the one being consumed. For work that
    releases the GIL (chunk reads and decompression): the loader's "workers" without processes,
    so nothing is pickled or copied between processes. Errors re-raise here; leaving early cancels
    what has not started."""
    ahead = max(1, threads + 1 if ahead is None else ahead)
    ex = ThreadPoolExecutor(max(1, threads), thread_name_prefix="vid_assets-read")
    pending: deque = deque()
    try:
        for item in items:
            pending.append(ex.submit(fn, item))
            if len(pending) > ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        ex.shutdown(wait=False, cancel_futures=True)


def grouped(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last may be shorter)."""
    group: list[T] = []
    for item in items:
        group.append(item)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group
