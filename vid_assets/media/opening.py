"""Where video bytes come from: local paths, any fsspec URL, FFmpeg-native live URLs, and pluggable
stream processors (URL -> something PyAV can open).

- Local paths (and ``file://``) are handed to FFmpeg directly.
- ``rtmp://``, ``rtsp://``, ``srt://``, ``udp://`` and ``.m3u8`` (HLS) URLs are opened by FFmpeg
  natively, as live streams.
- Everything else with a scheme (``http(s)://``, ``s3://``, ``gs://``, ``hf://``, ``memory://`` ...)
  is opened with fsspec as a seekable file object: PyAV reads it through range requests, so sampling
  a few seconds of a long remote file never downloads the whole file.
- Stream processors are consulted first: each says which URLs it ``matches`` and ``resolve``\\s them
  to a path, URL or file object. ``register_stream_processor`` adds one without touching this module;
  :class:`YtDlpProcessor` (optional extra ``youtube``) resolves YouTube pages with ``yt-dlp``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import IO, Any, Protocol, runtime_checkable
from urllib.parse import urlparse

NATIVE_SCHEMES = frozenset({"rtmp", "rtmps", "rtsp", "rtsps", "srt", "udp", "tcp", "rtp", "mms"})
FSSPEC_BLOCK = 1 << 18  # 256 KiB range reads


@runtime_checkable
class StreamProcessor(Protocol):
    name: str

    def matches(self, url: str) -> bool: ...

    def resolve(self, url: str) -> str | IO[bytes]: ...


_PROCESSORS: list[StreamProcessor] = []


def register_stream_processor(processor: StreamProcessor, *, first: bool = True) -> StreamProcessor:
    """Add a processor (consulted before the built-in rules; ``first`` puts it ahead of others)."""
    if not isinstance(processor, StreamProcessor):
        raise TypeError("a stream processor needs .name, .matches(url) and .resolve(url)")
    _PROCESSORS.insert(0, processor) if first else _PROCESSORS.append(processor)
    return processor


def unregister_stream_processor(name: str) -> None:
    _PROCESSORS[:] = [p for p in _PROCESSORS if p.name != name]


@contextlib.contextmanager
def registered(processor: StreamProcessor | None) -> Iterator[None]:
    """``processor`` consulted first while the block runs (nothing when it is None)."""
    if processor is None:
        yield
        return
    register_stream_processor(processor)
    try:
        yield
    finally:
        unregister_stream_processor(processor.name)


def processor_for(source: str | os.PathLike[str]) -> StreamProcessor | None:
    """The first registered processor that takes ``source`` (None: the built-in rules apply)."""
    s = os.fspath(source)
    return next((p for p in _PROCESSORS if p.matches(s)), None)


def scheme_of(source: str | os.PathLike[str]) -> str:
    s = os.fspath(source)
    parsed = urlparse(s)
    # "C:\\x.mp4" parses with scheme "c": treat one-letter schemes and no scheme as local paths
    return parsed.scheme.lower() if len(parsed.scheme) > 1 else ""


def is_live(source: str | os.PathLike[str]) -> bool:
    s = os.fspath(source)
    return scheme_of(s) in NATIVE_SCHEMES or urlparse(s).path.endswith(".m3u8")


def open_source(source: str | os.PathLike[str] | IO[bytes]) -> tuple[Any, str]:
    """``(thing av.open accepts, description)`` for a path, URL or already-open file object."""
    if hasattr(source, "read"):
        return source, getattr(source, "name", "<stream>")
    s = os.fspath(source)
    for p in _PROCESSORS:
        if p.matches(s):
            resolved = p.resolve(s)
            if isinstance(resolved, str) and resolved != s:
                opened, _ = open_source(resolved)
                return opened, s
            return resolved, s
    scheme = scheme_of(s)
    if scheme in ("", "file"):
        return (urlparse(s).path if scheme == "file" else s), s
    if is_live(s):
        return s, s
    return open_remote(s), s


def open_remote(url: str, **storage_options: Any) -> IO[bytes]:
    """A seekable file object over an fsspec URL, read in cached 256 KiB ranges.

    blockcache: each block is fetched once, whatever order FFmpeg reads in (mp4 indexes are often
    at the end, so the demuxer jumps head -> tail -> data). ``storage_options`` go to the
    filesystem (e.g. ``allow_redirects=False`` for http, as the prediction service uses).
    """
    import fsspec

    # the block size and cache go to the file, the options to the filesystem: ``fsspec.open`` hands
    # every keyword to the filesystem, which s3fs rejects (http's happened to take them)
    fs, path = fsspec.core.url_to_fs(url, **storage_options)
    return fs.open(path, "rb", block_size=FSSPEC_BLOCK, cache_type="blockcache")


class YtDlpProcessor:
    """YouTube (and other sites yt-dlp knows) page URL -> direct media URL. Needs ``yt-dlp``."""

    name = "yt-dlp"
    hosts = ("youtube.com", "www.youtube.com", "m.youtube.com", "youtu.be")

    def matches(self, url: str) -> bool:
        return urlparse(url).hostname in self.hosts

    def resolve(self, url: str) -> str:
        try:
            import yt_dlp
        except ImportError as e:
            raise RuntimeError("YouTube URLs need `pip install 'vid_assets[youtube]'` (yt-dlp)") from e
        with yt_dlp.YoutubeDL({"format": "bestvideo[ext=mp4]/best", "quiet": True}) as ydl:
            return ydl.extract_info(url, download=False)["url"]


register_stream_processor(YtDlpProcessor(), first=False)
