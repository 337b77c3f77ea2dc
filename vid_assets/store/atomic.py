"""All-or-nothing directory writes: build under a staging name, publish with one rename.

Readers only ever look at final paths, so a crash mid-write leaves at most an orphan in the
staging folder (swept on the next write), never a half-written video where readers look.

Replacing an existing directory takes two renames (old aside, new in place). A crash between them
would leave neither in place, so the complete new directory is first renamed to ``<token>.ready``
beside a ``<token>.target`` note naming its destination: whatever the crash point, ``recover``
(run when a store is opened, before each write and by ``vid-assets gc``) finishes the swap.
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
READY, TARGET = ".ready", ".target"
# a ready directory older than this belongs to a writer that died mid-swap (a live one finishes its
# swap within milliseconds of marking it ready)
ABANDONED_S = 10.0


def _sweep(folder: Path, older_than_s: float = 3600.0) -> None:
    """Remove leftovers of crashed writers (older than an hour, so live writers are untouched)."""
    if not folder.is_dir():
        return
    now = time.time()
    for child in folder.iterdir():
        try:
            if now - child.stat().st_mtime > older_than_s:
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink()
        except FileNotFoundError:
            pass


def recover(staging_root: str | os.PathLike[str], older_than_s: float = ABANDONED_S) -> list[Path]:
    """Finish the swaps that writers marked ready and died before completing; returns the final
    paths put in place."""
    staging_root = Path(staging_root)
    stage = staging_root / STAGING
    done: list[Path] = []
    if not stage.is_dir():
        return done
    now = time.time()
    for ready in stage.glob(f"*{READY}"):
        target = ready.with_suffix(TARGET)
        try:
            if now - ready.stat().st_mtime < older_than_s:
                continue
            final = staging_root / target.read_text()
        except FileNotFoundError:  # finished meanwhile, or no note (then not ours to move)
            continue
        _swap_in(ready, final, staging_root / TRASH)
        target.unlink(missing_ok=True)
        done.append(final)
    return done


def _swap_in(new: Path, final: Path, trash: Path) -> None:
    """``new`` to ``final``; an existing ``final`` goes to ``trash`` first and is then deleted."""
    final.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if final.exists():
        trash.mkdir(parents=True, exist_ok=True)
        old = trash / f"{final.name}.{uuid.uuid4().hex[:12]}"
        os.replace(final, old)
    os.replace(new, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def collect(root: str | os.PathLike[str], older_than_s: float = 0.0) -> int:
    """Remove what crashed writers left under ``root`` (every ``.staging`` / ``.trash`` folder at
    any depth) and return the bytes freed; a complete write left mid-swap is put in place first.
    ``older_than_s`` spares writers still running."""
    freed = 0
    root = Path(root)
    if not root.is_dir():
        return 0
    for stage in root.rglob(STAGING):
        recover(stage.parent, older_than_s=max(older_than_s, ABANDONED_S))
    now = time.time()
    for folder in [*root.rglob(STAGING), *root.rglob(TRASH)]:
        for child in list(folder.iterdir()) if folder.is_dir() else []:
            try:
                pending = child.with_suffix(READY)
                if now - child.stat().st_mtime < older_than_s or (child.suffix in (READY, TARGET) and pending.exists()):
                    continue  # a ready write younger than ABANDONED_S: its writer is swapping it in
                freed += tree_bytes(child)
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink()
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
    directory is removed and ``final`` is untouched; on a crash after the write completed,
    ``recover`` puts it in place.
    """
    final = Path(final)
    staging_root = Path(staging_root)
    stage = staging_root / STAGING
    stage.mkdir(parents=True, exist_ok=True)
    recover(staging_root)
    _sweep(stage)
    token = f"{final.name}.{uuid.uuid4().hex[:12]}"
    tmp = stage / token
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    target, ready = stage / f"{token}{TARGET}", stage / f"{token}{READY}"
    target.write_text(os.path.relpath(final, staging_root))
    os.replace(tmp, ready)  # complete: from here on a crash is finished by ``recover``
    _swap_in(ready, final, staging_root / TRASH)
    target.unlink(missing_ok=True)
