"""Where things live by default. Every path can be overridden by an environment variable, and in
Dagster by resource config (Launchpad / run config).

    VID_ASSETS_DATA     base folder                      (default: ./data)
    VID_ASSETS_VIDEOS   folder the sensor watches         (default: $VID_ASSETS_DATA/videos)
    VID_ASSETS_STORE    the Zarr feature store            (default: $VID_ASSETS_DATA/features.zarr)
    VID_ASSETS_WORK     intermediate per-partition arrays (default: $VID_ASSETS_DATA/work)
    VID_ASSETS_DEVICE   extractor device: auto|cpu|cuda   (default: auto)
    VID_ASSETS_DEVICE_LOCKS  which process holds which GPU (default: <tmp>/vid_assets-devices)
    VID_ASSETS_SETTLE_S  unmodified this long before a scanned file is taken (default: 5)
    VID_ASSETS_FOLLOW_LINKS_OUTSIDE  follow symlinks out of a scanned folder (default: no)
    VID_ASSETS_SETS     feature-set YAML files or folders, comma-separated (default: none; the
                        built-in default set only)
"""

from __future__ import annotations

import os
from pathlib import Path


def _env_path(var: str, default: Path) -> str:
    return str(Path(os.environ.get(var) or default).expanduser().absolute())


def data_dir() -> str:
    return _env_path("VID_ASSETS_DATA", Path("data"))


def videos_dir() -> str:
    return _env_path("VID_ASSETS_VIDEOS", Path(data_dir()) / "videos")


def store_dir() -> str:
    return _env_path("VID_ASSETS_STORE", Path(data_dir()) / "features.zarr")


def work_dir() -> str:
    return _env_path("VID_ASSETS_WORK", Path(data_dir()) / "work")


def keep_intermediates() -> bool:
    """``VID_ASSETS_KEEP_INTERMEDIATES=1`` keeps a video's frames / clips / embeddings in the work
    folder after it is stored (debugging, or a later run of part of the chain); default: deleted."""
    return os.environ.get("VID_ASSETS_KEEP_INTERMEDIATES", "").lower() in ("1", "true", "yes")


def decode_workers() -> int | None:
    """``VID_ASSETS_DECODE_WORKERS``: parallel decoders per run (unset: the engine's default for the host)."""
    value = os.environ.get("VID_ASSETS_DECODE_WORKERS")
    return int(value) if value else None


def executor() -> str:
    """``VID_ASSETS_EXECUTOR``: ``in_process`` (default: a run is one process; the video chain is one
    step, so step processes only add start-up) or ``multiprocess`` (a process per step)."""
    value = os.environ.get("VID_ASSETS_EXECUTOR") or "in_process"
    if value not in ("in_process", "multiprocess"):
        raise ValueError(f"VID_ASSETS_EXECUTOR must be in_process or multiprocess, not {value!r}")
    return value


def settle_s() -> float:
    """``VID_ASSETS_SETTLE_S``: a file in a scanned folder is taken only once it has not been
    modified for this long (default 5 s), so that a file still being copied is not hashed half
    written. ``0`` takes every file at once."""
    return float(os.environ.get("VID_ASSETS_SETTLE_S") or 5.0)


def follow_links_outside() -> bool:
    """``VID_ASSETS_FOLLOW_LINKS_OUTSIDE=1`` lets a symlink in a scanned folder point anywhere;
    by default a link whose target is outside the scanned folder is skipped."""
    return os.environ.get("VID_ASSETS_FOLLOW_LINKS_OUTSIDE", "").lower() in ("1", "true", "yes")


def device() -> str:
    return os.environ.get("VID_ASSETS_DEVICE", "auto")


def feature_set_files() -> list[str]:
    """``VID_ASSETS_SETS``: YAML files or folders of them declaring feature sets (comma-separated)."""
    return [p.strip() for p in (os.environ.get("VID_ASSETS_SETS") or "").split(",") if p.strip()]
