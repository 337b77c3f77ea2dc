"""Finding videos: folder scans (settled files, safe links), manifests and object-store prefixes.

Each finder returns what it found and, for a folder, what it skipped and why, so a sensor can
log the skips instead of dropping files silently.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from vid_assets.media.identity import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS


@dataclass(frozen=True)
class Skipped:
    """A file a folder scan did not take, and why (callers log these)."""

    path: Path
    reason: str


def scan_folder(
    folder: str | os.PathLike[str],
    newer_than_ns: int = 0,
    *,
    settle_s: float | None = None,
    follow_links_outside: bool | None = None,
    skipped: list[Skipped] | None = None,
) -> list[tuple[Path, int]]:
    """Video files under ``folder`` (recursive) with mtime_ns, oldest first.

    ``newer_than_ns`` lets a sensor skip files it has already looked at without hashing them again.
    Hidden files and partial downloads (``.part``, ``.tmp``) are ignored. Not taken, each with its
    reason in ``skipped``: what is not a regular file (a FIFO would block the hashing read
    forever), a symlink to a file outside ``folder`` (unless ``follow_links_outside``), a file
    modified less than ``settle_s`` ago (still being copied: it is taken on a later scan), and
    a file of an audio-only extension. Defaults: ``settings.settle_s()`` and
    ``settings.follow_links_outside()``.
    """
    from vid_assets import settings

    settle_ns = int((settings.settle_s() if settle_s is None else settle_s) * 1e9)
    follow = settings.follow_links_outside() if follow_links_outside is None else follow_links_outside
    root = Path(folder)
    if not root.is_dir():
        return []
    real_root = root.resolve()
    skipped = [] if skipped is None else skipped
    found: list[tuple[Path, int]] = []
    now = time.time_ns()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            suffix = Path(name).suffix.lower()
            p = Path(dirpath) / name
            if name.startswith("."):
                continue
            if suffix in AUDIO_EXTENSIONS:
                skipped.append(Skipped(p, f"audio only ({suffix}): no video stream to embed"))
                continue
            if suffix not in VIDEO_EXTENSIONS:
                continue
            try:
                st = p.stat()  # follows a link: what would be read
                if p.is_symlink() and not follow and not (target := p.resolve()).is_relative_to(real_root):
                    skipped.append(Skipped(p, f"symlink to {target}, outside {real_root}"))
                    continue
            except (FileNotFoundError, RuntimeError):  # deleted while we walked, a dangling or looping link
                continue
            if not stat.S_ISREG(st.st_mode):
                skipped.append(Skipped(p, "not a regular file (a FIFO, socket or device)"))
                continue
            if now - st.st_mtime_ns < settle_ns:
                skipped.append(Skipped(p, f"still being written (modified {(now - st.st_mtime_ns) / 1e9:.1f} s ago)"))
                continue
            if st.st_mtime_ns > newer_than_ns:
                found.append((p, st.st_mtime_ns))
    found.sort(key=lambda t: (t[1], str(t[0])))
    return found


def read_manifest(location: str | os.PathLike[str]) -> list[dict]:
    """Rows of a CSV / JSONL / Parquet manifest: ``uri`` (required), optional ``id`` and ``caption``.

    Relative uris are resolved against the manifest's own folder (or URL prefix).
    """
    import csv
    import io
    import json

    import fsspec

    loc = os.fspath(location)
    suffix = loc.lower().rsplit(".", 1)[-1]
    with fsspec.open(loc, "rb") as f:
        raw = f.read()
    if suffix == "parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(io.BytesIO(raw)).to_pylist()
    elif suffix in ("jsonl", "ndjson"):
        rows = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
    elif suffix == "csv":
        rows = list(csv.DictReader(io.StringIO(raw.decode())))
    else:
        raise ValueError(f"manifest {loc}: unsupported format .{suffix} (csv, jsonl or parquet)")
    base = loc.rsplit("/", 1)[0] if "/" in loc else "."
    out = []
    for i, row in enumerate(rows):
        uri = (row.get("uri") or "").strip()
        if not uri:
            raise ValueError(f"manifest {loc}: row {i + 1} has no uri")
        if "://" not in uri and not os.path.isabs(uri):
            uri = f"{base}/{uri}"
        out.append({"uri": uri, "id": (row.get("id") or None), "caption": (row.get("caption") or None)})
    return out


def scan_prefix(prefix: str) -> list[tuple[str, str]]:
    """Video files under an fsspec prefix (``s3://bucket/videos/``) with a change fingerprint."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(prefix)
    found = []
    for path, info in sorted(fs.find(root, detail=True).items()):
        name = path.rsplit("/", 1)[-1]
        if name.startswith(".") or Path(name).suffix.lower() not in VIDEO_EXTENSIONS:
            continue
        fp = f"{info.get('size')}:{info.get('mtime') or info.get('LastModified') or info.get('ETag') or ''}"
        found.append((fs.unstrip_protocol(path), fp))
    return found
