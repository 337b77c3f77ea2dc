"""A background-thread prefetcher: the producer (zarr reads, decoding) runs ahead of the consumer.

Zarr/blosc reads, file I/O and FFmpeg decoding release the GIL, so on two cores the next item is
produced while the current one is consumed.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
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
