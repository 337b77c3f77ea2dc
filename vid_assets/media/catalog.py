"""Partition key -> source mapping, and content hash -> key.

Dagster's dynamic partitions store only keys; the catalog remembers where each key's bytes live
(one small JSON file per key, written atomically, so concurrent sensors/runs never clash). A second
index by content hash makes identity follow the bytes: a renamed or moved file keeps the key it was
first registered under, and only its recorded location changes.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path

from vid_assets.media.identity import VideoRef


class VideoCatalog:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def _write(self, path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)

    def key_for_hash(self, content_hash: str) -> str | None:
        try:
            return (self.root / "by_hash" / content_hash).read_text().strip()
        except FileNotFoundError:
            return None

    def register(self, ref: VideoRef) -> VideoRef:
        """Record ``ref``; returns it under its canonical key (the first key seen for its bytes)."""
        known = self.key_for_hash(ref.content_hash)
        if known is not None and known != ref.key:
            ref = replace(ref, key=known)
        self._write(self._path(ref.key), json.dumps(ref.to_dict()))
        if known is None:
            self._write(self.root / "by_hash" / ref.content_hash, ref.key)
        return ref

    def get(self, key: str) -> VideoRef:
        try:
            return VideoRef(**json.loads(self._path(key).read_text()))
        except FileNotFoundError:
            raise KeyError(
                f"partition {key!r} is not in the video catalog at {self.root}; "
                "register the file first (sensor, `vid-assets register`, or the demo)"
            ) from None

    # -- failures (a failed-videos report, and quarantine) -----------------------------------------
    def _failure_path(self, key: str, feature_set: str | None) -> Path:
        """The default set's failures at ``failures/<key>.json``, another set's under ``failures/<set>/``."""
        folder = self.root / "failures"
        return (folder if feature_set in (None, "default") else folder / feature_set) / f"{key}.json"

    def record_failure(
        self, key: str, error_class: str, message: str, stage: str = "decode", feature_set: str | None = None
    ) -> dict:
        import datetime as dt

        try:
            source = self.get(key).uri
        except KeyError:
            source = ""
        rec = {
            "id": key,
            "source": source,
            "error_class": error_class,
            "stage": stage,
            "message": message,
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "feature_set": feature_set or "default",
        }
        self._write(self._failure_path(key, feature_set), json.dumps(rec))
        return rec

    def clear_failure(self, key: str, feature_set: str | None = None) -> None:
        self._failure_path(key, feature_set).unlink(missing_ok=True)

    def failures(self, feature_set: str | None = None) -> list[dict]:
        """Every video whose last attempt failed, in any set (or in ``feature_set`` only)."""
        folder = self.root / "failures"
        if not folder.is_dir():
            return []
        if feature_set is not None:
            folder = self._failure_path("x", feature_set).parent
            paths = sorted(folder.glob("*.json"))
        else:
            paths = sorted(folder.glob("*.json")) + sorted(folder.glob("*/*.json"))
        return [{"feature_set": "default", **json.loads(p.read_text())} for p in paths]
