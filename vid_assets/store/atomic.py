"""All-or-nothing directory writes: build under a staging name, publish with one rename.

Readers only ever look at final paths, so a crash mid-write leaves at most an orphan in the
staging folder (swept on the next write), never a half-written video where readers look.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

STAGING = ".staging"
TRASH = ".trash"


def _sweep(folder: Path, older_than_s: float = 3600.0) -> None:
    """Remove leftovers of crashed writers (older than an hour, so live writers are untouched)."""
    if not folder.is_dir():
        return
    now = time.time()
    for child in folder.iterdir():
        try:
            if now - child.stat().st_mtime > older_than_s:
                shutil.rmtree(child, ignore_errors=True)
        except FileNotFoundError:
            pass


def collect(root: str | os.PathLike[str], older_than_s: float = 0.0) -> int:
    """Remove what crashed writers left under ``root`` (every ``.staging`` / ``.trash`` folder at
    any depth) and return the bytes freed. ``older_than_s`` spares writers still running."""
    freed = 0
    root = Path(root)
    if not root.is_dir():
        return 0
    now = time.time()
    for folder in [*root.rglob(STAGING), *root.rglob(TRASH)]:
        for child in list(folder.iterdir()) if folder.is_dir() else []:
            try:
                if now - child.stat().st_mtime < older_than_s:
                    continue
                freed += tree_bytes(child)
                shutil.rmtree(child, ignore_errors=True)
            except FileNotFoundError:
                pass
    return freed


def tree_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes of the files under ``path`` (0 if it is gone)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            with suppress(FileNotFoundError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


@contextmanager
def atomic_dir(final: str | os.PathLike[str], staging_root: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh staging directory; on clean exit it replaces ``final`` in one rename.

    An existing ``final`` is first moved aside (rename) and deleted after the new one is in place,
    so re-materializing replaces a video cleanly with no stale files mixed in. On error the staging
    directory is removed and ``final`` is untouched.
    """
    final = Path(final)
    staging_root = Path(staging_root)
    stage = staging_root / STAGING
    trash = staging_root / TRASH
    stage.mkdir(parents=True, exist_ok=True)
    _sweep(stage)
    tmp = stage / f"{final.name}.{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    final.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if final.exists():
        trash.mkdir(parents=True, exist_ok=True)
        old = trash / f"{final.name}.{uuid.uuid4().hex[:12]}"
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
