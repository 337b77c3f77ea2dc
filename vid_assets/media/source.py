"""Video identity: cheap content hashes and safe, stable partition keys.

A partition key is ``<safe file stem>-<8 hex of the content hash>``: readable in the Dagster UI,
stable across runs and machines, and free of characters Dagster or file systems dislike
(``/ , | ..`` and friends).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import stat
import time
import unicodedata
from dataclasses import asdict, dataclass, replace
from pathlib import Path

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".flv", ".wmv", ".3gp"}
)
# audio containers a video folder often holds beside the videos: reported as skipped, not silently
AUDIO_EXTENSIONS = frozenset({".m4a", ".mp3", ".aac", ".wav", ".flac", ".ogg", ".opus", ".wma"})
_HASH_BLOCK = 1 << 20  # 1 MiB from the head and from the tail
# letters and digits of every script stay (a Japanese name keeps a readable key); the rest, and
# bytes that are not UTF-8 (surrogate-escaped), become "_"
_UNSAFE = re.compile(r"[^\w-]+")


def content_hash_remote(uri: str, storage_options: dict | None = None) -> tuple[str, int]:
    """The same digest as :func:`content_hash` for an fsspec URL, from two range reads."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    size = int(fs.info(path)["size"])
    h = hashlib.sha256(str(size).encode())
    h.update(fs.cat_file(path, start=0, end=min(size, _HASH_BLOCK)))
    if size > _HASH_BLOCK:
        h.update(fs.cat_file(path, start=max(size - _HASH_BLOCK, _HASH_BLOCK), end=size))
    return h.hexdigest(), size


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


def name_text(name: str) -> dict[str, str]:
    """A file name or path as stored data: ``{"source": text}`` in valid UTF-8, plus, when the name
    has bytes that are not UTF-8 (Python holds them as surrogate escapes, which no UTF-8 writer
    accepts), ``source_bytes_b64``: the exact bytes, so nothing is lost. The text shows such a
    byte as ``\\xNN``."""
    try:
        name.encode("utf-8")
        return {"source": name}
    except UnicodeEncodeError:
        raw = os.fsencode(name)
        return {"source": raw.decode("utf-8", "backslashreplace"), "source_bytes_b64": base64.b64encode(raw).decode()}


def partition_key(name: str, digest: str, max_stem: int = 48) -> str:
    """A Dagster-safe key from a file name (or manifest id) and its content hash."""
    stem = Path(name).stem if Path(name).suffix.lower() in VIDEO_EXTENSIONS else name
    stem = unicodedata.normalize("NFC", stem)  # macOS writes names decomposed (NFD)
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
    id: str | None = None  # the user's own id (a manifest's ``id``); None: the file stem

    @property
    def user_id(self) -> str:
        """What the user calls this video: the manifest ``id``, else the file name without suffix
        (what seed 002's ``VIDEO_ID.npy`` files are named by)."""
        if self.id:
            return self.id
        name = self.uri.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
        return name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], caption: str | None = None) -> VideoRef:
        p = Path(path).resolve()
        digest = content_hash(p)
        return cls(
            key=partition_key(p.name, digest), uri=str(p), size=p.stat().st_size, content_hash=digest, caption=caption
        )

    @classmethod
    def from_uri(cls, uri: str, caption: str | None = None, id: str | None = None) -> VideoRef:
        """A local path, any fsspec URL or a URL a stream processor resolves (identity: the bytes
        it resolves to); a manifest ``id`` replaces the file name in the key."""
        from vid_assets.media.sources import processor_for

        processor = processor_for(uri)
        if processor is not None:
            resolved = processor.resolve(uri)
            if not isinstance(resolved, str):
                raise ValueError(f"{processor.name} resolves {uri} to a stream: no stable identity to key it by")
            inner = cls.from_uri(resolved)
            name = uri.rstrip("/").rsplit("/", 1)[-1] or processor.name
            ref = cls(
                key=partition_key(name, inner.content_hash), uri=uri, size=inner.size, content_hash=inner.content_hash
            )
        elif "://" not in uri or uri.startswith("file://"):
            ref = cls.from_path(uri.removeprefix("file://"), caption=caption)
        else:
            digest, size = content_hash_remote(uri)
            name = uri.rstrip("/").rsplit("/", 1)[-1]
            ref = cls(key=partition_key(name, digest), uri=uri, size=size, content_hash=digest, caption=caption)
        if caption and ref.caption != caption:
            ref = replace(ref, caption=caption)
        if id:
            ref = cls(
                key=partition_key(id, ref.content_hash),
                uri=ref.uri,
                size=ref.size,
                content_hash=ref.content_hash,
                caption=caption,
                id=str(id),
            )
        return ref

    def to_dict(self) -> dict:
        return asdict(self)


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
