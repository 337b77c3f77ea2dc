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
        from vid_assets.media.opening import processor_for

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
