"""A bounded in-memory pipe: a live upload written by the web server, read by FFmpeg.

PyAV reads any object with ``read``; without ``seek``/``tell`` FFmpeg treats it as a non-seekable
stream (what a live MPEG-TS upload is). ``write`` blocks while ``max_buffer`` bytes are unread, so a
fast client is slowed to the decoder's pace by TCP flow control instead of filling memory.
"""

from __future__ import annotations

import threading
from collections import deque


class BytePipe:
    name = "<live upload>"

    def __init__(self, max_buffer: int = 8 << 20) -> None:
        self.max_buffer = max_buffer
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._eof = False  # writer finished: read drains what is left, then returns b""
        self._closed = False  # reader gone / aborted: read returns b"" now, write drops data
        self._cond = threading.Condition()
        self.bytes_in = 0

    def write(self, data: bytes) -> None:
        with self._cond:
            while self._size >= self.max_buffer and not self._closed:
                self._cond.wait()
            if self._closed or self._eof:
                return
            self._chunks.append(bytes(data))
            self._size += len(data)
            self.bytes_in += len(data)
            self._cond.notify_all()

    def finish(self) -> None:
        """The upload ended: readers see EOF once the buffer is drained."""
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def close(self) -> None:
        """Abort: wake everyone, discard what is buffered."""
        with self._cond:
            self._closed = True
            self._chunks.clear()
            self._size = 0
            self._cond.notify_all()

    def read(self, n: int = -1) -> bytes:
        with self._cond:
            while not self._chunks and not (self._eof or self._closed):
                self._cond.wait()
            if self._closed or not self._chunks:
                return b""
            out = bytearray()
            while self._chunks and (n < 0 or len(out) < n):
                chunk = self._chunks.popleft()
                if n >= 0 and len(out) + len(chunk) > n:
                    take = n - len(out)
                    self._chunks.appendleft(chunk[take:])
                    chunk = chunk[:take]
                out += chunk
                self._size -= len(chunk)
            self._cond.notify_all()
            return bytes(out)

    def seekable(self) -> bool:
        return False
