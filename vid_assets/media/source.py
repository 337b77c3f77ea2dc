"""Video identity: cheap content hashes and safe, stable partition keys.

A partition key is ``<safe file stem>-<8 hex of the content hash>``: readable in the Dagster UI,
stable across runs and machines, and free of characters Dagster or file systems dislike
(``/ , | ..`` and friends).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".flv", ".wmv", ".3gp"}
)
_HASH_BLOCK = 1 << 20  # 1 MiB from the head and from the tail
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def content_hash(path: str | os.PathLike[str]) -> str:
    """sha256 over the file size plus its first and last MiB.

    Cheap for multi-GB files yet changes whenever a file is replaced, re-encoded or truncated;
    a renamed or moved file keeps its hash.
    """
    p = Path(path)
    size = p.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with p.open("rb") as f:
        h.update(f.read(_HASH_BLOCK))
        if size > _HASH_BLOCK:
            f.seek(max(size - _HASH_BLOCK, _HASH_BLOCK))
            h.update(f.read(_HASH_BLOCK))
    return h.hexdigest()


def partition_key(name: str, digest: str, max_stem: int = 48) -> str:
    """A Dagster-safe key from a file name and its content hash."""
    stem = Path(name).stem
    safe = _UNSAFE.sub("_", stem).strip("_-")[:max_stem] or "video"
    return f"{safe}-{digest[:8]}"


@dataclass(frozen=True)
class VideoRef:
    """One registered video: its partition key and where its bytes live."""

    key: str
    uri: str
    size: int
    content_hash: str
    caption: str | None = None  # from a manifest; embedded once per video by the text model

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], caption: str | None = None) -> VideoRef:
        p = Path(path).resolve()
        digest = content_hash(p)
        return cls(
            key=partition_key(p.name, digest), uri=str(p), size=p.stat().st_size, content_hash=digest, caption=caption
        )

    def to_dict(self) -> dict:
        return asdict(self)


def scan_folder(folder: str | os.PathLike[str], newer_than_ns: int = 0) -> list[tuple[Path, int]]:
    """Video files under ``folder`` (recursive) with mtime_ns, oldest first.

    ``newer_than_ns`` lets a sensor skip files it has already looked at without hashing them again.
    Hidden files and partial downloads (``.part``, ``.tmp``) are ignored.
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    found: list[tuple[Path, int]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith(".") or Path(name).suffix.lower() not in VIDEO_EXTENSIONS:
                continue
            p = Path(dirpath) / name
            try:
                mtime = p.stat().st_mtime_ns
            except FileNotFoundError:  # deleted while we walked
                continue
            if mtime > newer_than_ns:
                found.append((p, mtime))
    found.sort(key=lambda t: (t[1], str(t[0])))
    return found
