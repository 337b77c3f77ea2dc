"""Which GPU a process takes when the device is ``auto`` and the host has several.

Dagster's pool ``gpu`` limits how many embedding steps run at once (``dagster instance concurrency
set gpu N``) but not *which* device each one uses: without this every step of an 8-GPU host would
load its model on ``cuda:0``. Each process that resolves ``auto`` takes the first device no other
process holds (a lock file per device, released by the OS when the process exits, crash included);
when every device is held, a second place on one, and so on, so N processes on M devices share
them evenly (``ceil(N / M)`` per device at most while none has exited). The lock directory is
shared by every process on the host (``VID_ASSETS_DEVICE_LOCKS``, default
``<tmp>/vid_assets-devices``), so steps, the prediction service and notebooks see each other's
claims. On a cluster each worker is given its own GPUs
(Kubernetes device plugin, ``CUDA_VISIBLE_DEVICES``) and this only picks among those.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from filelock import FileLock, Timeout

from vid_assets import settings

MAX_SHARE = 64  # holders per device tried before giving up on locks (then: the first device)

_claims: dict[tuple[str, tuple[str, ...]], int] = {}  # (lock dir, device ids) -> index this process holds
_locks: list[FileLock] = []  # held for the life of the process


def lock_dir() -> Path:
    return settings.device_locks_dir()


def visible_cuda_ids(count: int) -> list[str]:
    """Stable names of the ``count`` visible CUDA devices: the ``CUDA_VISIBLE_DEVICES`` entries
    (physical indices or UUIDs) when set, so processes with different masks still name the same
    GPU alike; the indices otherwise. Reads no CUDA state."""
    entries = [e.strip() for e in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if e.strip()]
    if len(entries) >= count:
        return entries[:count]
    return [str(i) for i in range(count)]


def claim_device(ids: Sequence[str], directory: str | Path | None = None) -> int:
    """Index into ``ids`` of the device this process takes, held until it exits.

    The first device nobody holds; if all are held, the first with a free second share, and so on.
    Asking again in the same process (or in a child forked from it) returns the same index.
    """
    if not ids:
        raise ValueError("no devices to choose from")
    root = Path(directory) if directory is not None else lock_dir()
    key = (str(root), tuple(ids))
    if key in _claims:
        return _claims[key]
    root.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):  # not ours to change: someone else made it
        root.chmod(0o1777)  # shared by every user's processes on the host, like /tmp
    for share in range(MAX_SHARE):
        for index, name in enumerate(ids):
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
            lock = FileLock(root / f"cuda-{safe}.{share}.lock", mode=0o666, thread_local=False)
            try:
                lock.acquire(timeout=0)
            except (Timeout, OSError):  # held, or another user's file we may not open
                continue
            _locks.append(lock)
            _claims[key] = index
            return index
    _claims[key] = 0
    return 0


def resolve_device(device="auto"):
    """``auto`` picks cuda > mps > cpu (a ``torch.device``); on a host with several GPUs, one no
    other process holds, made this process's current CUDA device."""
    import torch  # here: the lock helpers above stay importable without torch

    if str(device) == "auto":
        if torch.cuda.is_available():
            count = torch.cuda.device_count()
            if count > 1:
                index = claim_device(visible_cuda_ids(count))
                torch.cuda.set_device(index)  # device-less calls (streams, events) follow it
                return torch.device("cuda", index)
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)
