"""Where things live by default. Every path can be overridden by an environment variable, and in
Dagster by resource config (Launchpad / run config).

    VID_ASSETS_DATA     base folder                      (default: ./data)
    VID_ASSETS_VIDEOS   folder the sensor watches         (default: $VID_ASSETS_DATA/videos)
    VID_ASSETS_STORE    the Zarr feature store            (default: $VID_ASSETS_DATA/features.zarr)
    VID_ASSETS_WORK     intermediate per-partition arrays (default: $VID_ASSETS_DATA/work)
    VID_ASSETS_DEVICE   extractor device: auto|cpu|cuda   (default: auto)
    VID_ASSETS_RUNTIME  what runs the model: auto|torch|onnxruntime (default: auto)
    VID_ASSETS_CACHE    exported model graphs             (default: $XDG_CACHE_HOME/vid_assets)
    VID_ASSETS_DEVICE_LOCKS  which process holds which GPU (default: <tmp>/vid_assets-devices)
    VID_ASSETS_SETTLE_S  unmodified this long before a scanned file is taken (default: 5)
    VID_ASSETS_FOLLOW_LINKS_OUTSIDE  follow symlinks out of a scanned folder (default: no)
    VID_ASSETS_SETS     feature-set YAML files or folders, comma-separated (default: none; the
                        built-in default set only)
    VID_ASSETS_MANIFESTS  manifest files the sensor reads, comma-separated (default: none)
    VID_ASSETS_BATCH    videos per run of a backfill or sensor request (default: 512)
    VID_ASSETS_KEEP_INTERMEDIATES, VID_ASSETS_DECODE_WORKERS, VID_ASSETS_EXECUTOR,
    VID_ASSETS_STEP_START, VID_ASSETS_TUNE_MALLOC, VID_ASSETS_SPOOL, VID_ASSETS_CELERY_BROKER /
    VID_ASSETS_CELERY_BACKEND: see their functions below.

This module is the only reader of ``VID_ASSETS_*``: a name is documented where it is read.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _flag(var: str, default: str = "") -> bool:
    return os.environ.get(var, default).lower() in ("1", "true", "yes")


def comma_list(value: str | None) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``: how every list-valued setting is written."""
    return [p.strip() for p in (value or "").split(",") if p.strip()]


def _list(var: str) -> list[str]:
    return comma_list(os.environ.get(var))


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


def runtime() -> str:
    """``VID_ASSETS_RUNTIME``: what runs the model. ``auto`` (default) runs fp32 frame models on
    the CPU through ONNX Runtime (ResNet-50 1.1-1.2x and EfficientNet-Lite0 1.3-1.5x PyTorch's
    images/s on the 2-core VM; see ``extractors/onnxrt.py``) and everything else in PyTorch;
    ``onnxruntime`` asks for ONNX Runtime and warns where it cannot apply; ``torch`` always runs
    PyTorch. Per run in Dagster: the extractor resource's ``runtime``."""
    return os.environ.get("VID_ASSETS_RUNTIME") or "auto"


def cache_dir() -> str:
    """``VID_ASSETS_CACHE``: what is made once and reused across runs (exported ONNX graphs,
    weights not included); default ``$XDG_CACHE_HOME/vid_assets`` (``~/.cache/vid_assets``)."""
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return _env_path("VID_ASSETS_CACHE", Path(xdg) / "vid_assets")


def keep_intermediates() -> bool:
    """``VID_ASSETS_KEEP_INTERMEDIATES=1`` keeps a video's frames / clips / embeddings in the work
    folder after it is stored (debugging, or a later run of part of the chain); default: deleted."""
    return _flag("VID_ASSETS_KEEP_INTERMEDIATES")


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
    return _flag("VID_ASSETS_FOLLOW_LINKS_OUTSIDE")


def device() -> str:
    return os.environ.get("VID_ASSETS_DEVICE", "auto")


def feature_set_files() -> list[str]:
    """``VID_ASSETS_SETS``: YAML files or folders of them declaring feature sets (comma-separated)."""
    return _list("VID_ASSETS_SETS")


def manifests() -> list[str]:
    """``VID_ASSETS_MANIFESTS``: CSV/JSONL/Parquet manifests the sensor reads (comma-separated)."""
    return _list("VID_ASSETS_MANIFESTS")


def batch() -> int:
    """``VID_ASSETS_BATCH`` (older name ``VID_ASSETS_EMBED_BATCH``): videos per run of a backfill
    or a sensor request. Default 512: a run's fixed cost (1.3-2.7 s on 2 cores) is a few percent of
    512 short videos' work, and a retry redoes only the videos the failed attempt did not store
    (``defs/videos/resume.py``). A host with N GPUs wants at least N runs per backfill."""
    return int(os.environ.get("VID_ASSETS_BATCH") or os.environ.get("VID_ASSETS_EMBED_BATCH") or "512")


def report_every_s() -> float:
    """``VID_ASSETS_REPORT_EVERY_S``: a run tells Dagster about its finished videos in batches at
    most this often (default 5 s: a video shows as materialized within seconds of being stored;
    each batch costs a few SQLite transactions). ``0`` reports every video as it finishes."""
    return float(os.environ.get("VID_ASSETS_REPORT_EVERY_S") or 5.0)


def step_start() -> str:
    """``VID_ASSETS_STEP_START``: how run processes start, ``forkserver`` (default) or ``spawn``."""
    return os.environ.get("VID_ASSETS_STEP_START") or "forkserver"


def tune_malloc() -> bool:
    """``VID_ASSETS_TUNE_MALLOC=0`` keeps glibc's default malloc thresholds (see ``memory.py``)."""
    return os.environ.get("VID_ASSETS_TUNE_MALLOC", "1") != "0"


def device_locks_dir() -> Path:
    """``VID_ASSETS_DEVICE_LOCKS``: the folder of lock files that say which process holds which GPU."""
    return Path(os.environ.get("VID_ASSETS_DEVICE_LOCKS") or Path(tempfile.gettempdir()) / "vid_assets-devices")


def spool_dir() -> str | None:
    """``VID_ASSETS_SPOOL``: where the prediction service spools uploads (default: the temp folder)."""
    return os.environ.get("VID_ASSETS_SPOOL") or None


def celery_urls() -> tuple[str, str]:
    """``VID_ASSETS_CELERY_BROKER`` / ``VID_ASSETS_CELERY_BACKEND``: the Celery executor's broker
    and result backend (default: a Redis on this host)."""
    return (
        os.environ.get("VID_ASSETS_CELERY_BROKER", "redis://127.0.0.1:6379/0"),
        os.environ.get("VID_ASSETS_CELERY_BACKEND", "redis://127.0.0.1:6379/1"),
    )
