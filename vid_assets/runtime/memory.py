"""Process-wide allocator tuning: keep freed large buffers for reuse instead of unmapping them.

glibc serves every large allocation (torch activations, zarr chunk buffers, decoded frames) with a
fresh ``mmap`` and unmaps it on free, so each one pays a page fault per 4 KiB touched. In the VMs we
run on that is expensive: the EfficientNet-Lite0 forward on the 2-core VM spent ~0.8 cores in the
kernel, and raising glibc's mmap / trim thresholds doubled its images/s (benchmarks/RESULTS.md).
Freed memory then stays in the process for reuse (RSS no longer shrinks after a peak).
``VID_ASSETS_TUNE_MALLOC=0`` turns it off.
"""

from __future__ import annotations

import functools
import sys
import time

from vid_assets import settings

_done: bool | None = None


def tune_malloc() -> bool:
    """Raise glibc's mmap threshold (32 MiB), trim threshold (1 GiB) and top pad (256 MiB).
    Idempotent; returns False where it does not apply (not glibc/Linux, or turned off)."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if not settings.tune_malloc() or not sys.platform.startswith("linux"):
        return False
    try:
        libc = _libc()
        m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
        ok = libc.mallopt(m_mmap_threshold, 32 << 20) and libc.mallopt(m_trim_threshold, 1 << 30)
        _done = bool(ok and libc.mallopt(m_top_pad, 256 << 20))
    except (OSError, AttributeError):
        _done = False
    return _done


def release_free_memory() -> bool:
    """Hand the allocator's free memory back to the OS (glibc ``malloc_trim``). For a server that
    has gone idle: the thresholds above keep a burst's buffers in the process for reuse, which is
    what a busy server wants and an idle one should not hold on to. False where it does not apply."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(_libc().malloc_trim(0))
    except (OSError, AttributeError):
        return False


def limit_arenas(n: int = 2) -> bool:
    """Cap glibc's malloc arenas at ``n`` (glibc's default: 8 per core). Each thread that contends
    for the allocator gets an arena of its own, and ``malloc_trim`` never shrinks a thread arena's
    top: after eight concurrent 4K uploads, an idle server kept ~0.9 GiB more than before them in
    ~10 thread arenas (cpu2-avx2, with or without :func:`tune_malloc`), ~0.6 GiB with 2. For a
    service, whose request threads mostly wait on decode and the model's batcher. False where it
    does not apply."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return bool(_libc().mallopt(-8, n))  # M_ARENA_MAX
    except (OSError, AttributeError):
        return False


@functools.cache
def _libc():
    """The C library, found once: ``find_library`` runs ``ldconfig -p`` in a subprocess, and a
    long job trims every few seconds."""
    import ctypes
    import ctypes.util

    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


class PeriodicTrim:
    """Hands freed memory back every ``every_s`` seconds of a long job (call it once per pass).

    With the thresholds above, the heap keeps whatever fragmentation a long job leaves. Most of it
    came from the engine keeping views of each pass's output (a 20-min video: +1.2 GB untrimmed,
    a ~200-MB sawtooth with this trim), which it no longer does (``engine._Books.settle``). What is
    left is slower: the decoders, stores and writes of many videos, ~75 MB over 256 10-s videos
    in one engine (cpu2-epyc, session 32), which a trim hands back. Each call on a trimmed heap
    costs ~1 ms. It does nothing where :func:`tune_malloc` did not apply (glibc then trims by itself)."""

    def __init__(self, every_s: float = 3.0) -> None:
        self.every_s, self.last = every_s, time.monotonic()

    def __call__(self) -> None:
        if _done and time.monotonic() - self.last >= self.every_s:
            release_free_memory()
            self.last = time.monotonic()
