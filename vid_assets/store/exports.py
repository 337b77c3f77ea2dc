"""Exports for users of the old scripts: per-video ``.npy`` files and a failed-videos report."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from vid_assets.media.catalog import VideoCatalog
from vid_assets.store.features import FeatureStore


def export_npy(store: FeatureStore, out_dir: str | os.PathLike[str], crops: str = "mean") -> list[Path]:
    """``<out>/<video_id>.npy``: float32 ``[num_clips, D]`` (crops averaged, or ``crops="first"``).

    With the default plan (frames_per_clip=1) a clip is a sampled frame, i.e. ``[num_frames, D]``
    exactly like the old per-frame feature files.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for vid in store.list_videos():
        feats = store.features(store.open_video(vid)).astype(np.float32)
        arr = feats.mean(axis=1) if crops == "mean" else feats[:, 0]
        path = out / f"{vid}.npy"
        tmp = path.with_suffix(".npy.tmp")
        with tmp.open("wb") as f:
            np.save(f, arr)
        os.replace(tmp, path)
        written.append(path)
    return written


def failed_report(catalog: VideoCatalog, path: str | os.PathLike[str] | None = None) -> list[dict]:
    """``[{id, source, error_class, message, time}]`` for every video whose last attempt failed."""
    report = catalog.failures()
    if path is not None:
        Path(path).write_text(json.dumps(report, indent=2))
    return report
