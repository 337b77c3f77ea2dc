"""Partition key -> source mapping.

Dagster's dynamic partitions store only keys; the catalog remembers where each key's bytes live
(one small JSON file per key, written atomically, so concurrent sensors/runs never clash).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from vid_assets.media.source import VideoRef


class VideoCatalog:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def register(self, ref: VideoRef) -> VideoRef:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(ref.to_dict(), f)
        os.replace(tmp, self._path(ref.key))
        return ref

    def get(self, key: str) -> VideoRef:
        try:
            return VideoRef(**json.loads(self._path(key).read_text()))
        except FileNotFoundError:
            raise KeyError(
                f"partition {key!r} is not in the video catalog at {self.root}; "
                "register the file first (sensor, `vid-assets register`, or the demo)"
            ) from None

    def keys(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("*.json") if not p.name.startswith("."))
