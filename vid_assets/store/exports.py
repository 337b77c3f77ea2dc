"""Exports for users of the old scripts: seed 002's ``VIDEO_ID.npy`` files and ``failed_videos.json``.

Files are named by the user's own id for a video (the manifest ``id``, else the file stem). Two
videos with the same id (``a/x.mp4`` and ``b/x.mp4``) both get ``<id>-<first 8 hex of their
content hash>.npy``: the name depends only on the video, never on which was seen first. Writing is
incremental: ``.vid_assets_export.json`` in the folder remembers what each file was made from, so
a second export writes only what changed and removes only files it wrote itself for videos that
are gone.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vid_assets.media.catalog import VideoCatalog
from vid_assets.store.features import FeatureStore

LEDGER = ".vid_assets_export.json"


@dataclass
class NpyExport:
    written: list[Path] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    failed: int = 0


def _safe(name: str) -> str:
    """A user id as one file name (a manifest id may hold ``/``)."""
    return name.replace("/", "_").replace(os.sep, "_").strip() or "video"


def npy_names(videos: Iterable[tuple[str, str, str]]) -> dict[str, str]:
    """``{key: file name}`` for ``(key, user id, content hash)`` triples (see the module docstring)."""
    videos = list(videos)
    counts = Counter(_safe(uid) for _, uid, _ in videos)
    return {
        key: f"{_safe(uid)}.npy" if counts[_safe(uid)] == 1 else f"{_safe(uid)}-{digest[:8]}.npy"
        for key, uid, digest in videos
    }


def rows(features: np.ndarray, crops: str = "mean") -> np.ndarray:
    """Stored ``[clips, crops, *feature]`` -> float32 ``[clips, *feature]`` (crops averaged, or the first)."""
    feats = np.asarray(features, dtype=np.float32)
    return feats.mean(axis=1) if crops == "mean" else feats[:, 0]


def write_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        np.save(f, np.ascontiguousarray(array, dtype=np.float32))
    os.replace(tmp, path)


def _user_id(attrs: dict, key: str) -> str:
    if attrs.get("user_id"):
        return str(attrs["user_id"])
    name = str(attrs.get("source") or key).rstrip("/").rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name


def export_npy(
    store: FeatureStore,
    out_dir: str | os.PathLike[str],
    crops: str = "mean",
    failures: list[dict] | None = None,
) -> NpyExport:
    """``<out>/<video id>.npy``: float32 ``[clips, D]`` (``[clips, *shape]`` for spatial features),
    crops averaged (or ``crops="first"``). With a per-frame set (``frames_per_clip: 1``) a clip is
    a sampled frame: ``[num_frames, D]``, seed 002's layout. ``failures``: written as
    ``<out>/failed_videos.json`` (each failed video, its stage and reason)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ledger_path = out / LEDGER
    try:
        ledger: dict[str, dict] = json.loads(ledger_path.read_text())
    except (FileNotFoundError, ValueError):
        ledger = {}
    ids = {vid: store.open_video(vid).attrs for vid in store.list_videos()}
    names = npy_names((vid, _user_id(a, vid), str(a.get("content_hash", vid))) for vid, a in ids.items())
    result, now = NpyExport(), {}
    for vid, name in sorted(names.items(), key=lambda kv: kv[1]):
        made_from = {"key": vid, "stamp": store.stamp(vid), "crops": crops}
        now[name] = made_from
        path = out / name
        if ledger.get(name) == made_from and path.exists():
            result.unchanged += 1
            continue
        write_npy(path, rows(store.read_video(vid).features, crops))
        result.written.append(path)
    for name in sorted(set(ledger) - set(now)):  # ours, for a video no longer stored (or renamed)
        (out / name).unlink(missing_ok=True)
        result.removed.append(name)
    tmp = ledger_path.with_name(LEDGER + ".tmp")
    tmp.write_text(json.dumps(now, indent=1, sort_keys=True))
    os.replace(tmp, ledger_path)
    if failures is not None:
        failed_report_to(failures, out / "failed_videos.json")
        result.failed = len(failures)
    return result


def failed_report_to(failures: list[dict], path: str | os.PathLike[str]) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(failures, indent=2))
    os.replace(tmp, path)


def failed_report(
    catalog: VideoCatalog, path: str | os.PathLike[str] | None = None, feature_set: str | None = None
) -> list[dict]:
    """``[{id, user_id, source, stage, error_class, message, time, feature_set}]`` for every video
    whose last attempt failed (in ``feature_set`` only, when given)."""
    report = []
    for f in catalog.failures(feature_set):
        try:
            uid = catalog.get(f["id"]).user_id
        except KeyError:
            uid = f["id"]
        report.append({"user_id": uid, **f})
    if path is not None:
        failed_report_to(report, path)
    return report
