"""The feature store on an object store (``s3://``, ``gs://`` ...): the same layout as
:class:`~vid_assets.store.features.FeatureStore`, committed by upload order instead of renames."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import zarr

from vid_assets.store.features import FEATURE_DTYPES, LAYOUT_VERSION, FeatureStore


def is_url(root: str | os.PathLike[str]) -> bool:
    """A store root on an object store (``s3://``, ``gs://`` ...), not a local folder."""
    s = os.fspath(root)
    return "://" in s and not s.startswith("file://")


def open_store(root: str | os.PathLike[str], **kwargs) -> FeatureStore:
    """The feature store at ``root``: a local folder, or a URL of any fsspec filesystem
    (``s3://bucket/features.zarr``: credentials from the usual environment)."""
    return RemoteFeatureStore(os.fspath(root), **kwargs) if is_url(root) else FeatureStore(root, **kwargs)


class RemoteFeatureStore(FeatureStore):
    """The same layout on an object store. Object stores have no rename, so a video is written
    to a local staging folder as usual, then uploaded with its group's ``zarr.json`` last: that
    object is the commit marker (readers list only groups that have it), so a reader never sees a
    half-uploaded video, and a crashed upload leaves only objects nobody lists (the next write of
    that video replaces them). Replacing a video removes its marker first: it is briefly absent,
    never mixed."""

    def __init__(self, root: str, compression_level: int = 5, chunk_clips: int = 256, dtype: str = "float16") -> None:
        import fsspec

        if dtype not in FEATURE_DTYPES:
            raise ValueError(f"feature dtype must be one of {FEATURE_DTYPES}, got {dtype!r}")
        self.root, self.url = root.rstrip("/"), root.rstrip("/")
        self.dtype, self.compression_level, self.chunk_clips = dtype, compression_level, chunk_clips
        # no listing cache: other writers (SLURM tasks, runs) add videos while this process lists
        self.fs, self.path = fsspec.core.url_to_fs(self.url, use_listings_cache=False)

    def _key(self, *parts: str) -> str:
        return "/".join([self.path, *parts])

    def video_path(self, video_id: str) -> str:  # type: ignore[override]
        return f"{self.url}/videos/{video_id}"

    def stamp(self, video_id: str) -> str:
        info = self.fs.info(self._key("videos", video_id, "zarr.json"))
        return str(info.get("ETag") or info.get("LastModified") or info.get("mtime") or info.get("size"))

    def _ensure_root(self) -> None:
        for key, body in (
            (self._key("zarr.json"), {"vid_assets_layout": LAYOUT_VERSION}),
            (self._key("videos", "zarr.json"), {}),
        ):
            if not self.fs.exists(key):
                meta = {"zarr_format": 3, "node_type": "group", "attributes": body}
                self.fs.pipe(key, json.dumps(meta).encode())

    def write_video(self, video_id: str, **arrays) -> str:  # type: ignore[override]
        import tempfile

        with tempfile.TemporaryDirectory(prefix="vid_assets_upload_") as tmp:
            local = FeatureStore(tmp, self.compression_level, self.chunk_clips, self.dtype)
            src = Path(local.write_video(video_id, **arrays))
            self._ensure_root()
            final = self._key("videos", video_id)
            marker = f"{final}/zarr.json"
            if self.fs.exists(marker):  # absent while replaced, never a mix of two versions
                self.fs.rm(marker)
            if self.fs.exists(final):
                self.fs.rm(final, recursive=True)
            files = [p for p in sorted(src.rglob("*")) if p.is_file() and p != src / "zarr.json"]
            if files:
                self.fs.put([str(p) for p in files], [f"{final}/{p.relative_to(src).as_posix()}" for p in files])
            self.fs.put(str(src / "zarr.json"), marker)  # the commit marker, last
        return self.video_path(video_id)

    def list_videos(self) -> list[str]:
        found = self.fs.glob(self._key("videos", "*", "zarr.json"))
        return sorted(p.rstrip("/").split("/")[-2] for p in found)

    def has_video(self, video_id: str) -> bool:
        return self.fs.exists(self._key("videos", video_id, "zarr.json"))

    def open_video(self, video_id: str) -> zarr.Group:
        if not self.has_video(video_id):
            raise KeyError(f"video {video_id!r} is not in the store at {self.url}")
        store = zarr.storage.FsspecStore.from_url(
            self.video_path(video_id), read_only=True, storage_options={"use_listings_cache": False}
        )
        return zarr.open_group(store=store, mode="r")

    def delete_video(self, video_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self._key("videos", video_id, "zarr.json"))
            self.fs.rm(self._key("videos", video_id), recursive=True)

    def save_label_set(self, label_set: str, names: list[str]) -> None:
        from vid_assets.extractors.labels import CUSTOM_PREFIX

        key = self._key("label_sets", f"{label_set}.json")
        if label_set.startswith(CUSTOM_PREFIX) and not self.fs.exists(key):
            self.fs.pipe(key, json.dumps(names).encode())

    def label_names(self, label_set: str) -> list[str]:
        from vid_assets.extractors.labels import CUSTOM_PREFIX, label_names

        key = self._key("label_sets", f"{label_set}.json")
        if label_set.startswith(CUSTOM_PREFIX) and self.fs.exists(key):
            return json.loads(self.fs.cat(key))
        return label_names(label_set)
