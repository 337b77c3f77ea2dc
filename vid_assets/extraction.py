"""One call from a list of videos to features on disk, without Dagster: the engine the assets run.

    import vid_assets
    summary = vid_assets.extract(["a.mp4", "videos/"], out="features/", format="npy", fps=1, frames_per_clip=1)

``format="zarr"`` writes the feature store the assets write (``out`` is its root); ``"npy"``
writes seed 002's layout: ``out/<video id>.npy`` float32 ``[clips, D]`` (crops averaged; named as
``vid-assets export npy`` names them, see ``store/exports.py``) and
``out/failed_videos.json``. What is already done in ``out`` is skipped (the store by content hash
and configuration, ``.npy`` by name), failures are recorded with their stage and reason, and a
summary comes back.

Arguments of :func:`extract` beside ``sources``, ``out`` and ``format``:

- ``plan``: :func:`vid_assets.fit.fit_config`'s fields (``fps``, ``mode``, ``every_n_frames``,
  ``frames_per_clip``, ``crop`` ...), the rest fitted to the model; ``extractor_args``: the
  factory's own arguments (``pretrained=False`` ...).
- ``progress``: a hook with ``reset(total_frames)`` / ``update(current_frame)``
  (``vid_assets.progress``: seed 001's classes as they are, or ``WebProgress(url)``);
  ``on_pass(clips)`` after each model pass; ``on_video(done, total)`` as each video ends.
  ``frames`` in the summary is the total a ``progress`` hook was given (0 without one, as videos
  are only probed for it).
- ``stream_processor``: consulted first for this call's URLs (``matches(url)`` /
  ``resolve(url)``, as ``register_stream_processor`` takes).
- ``shard=(i, n)``: only the i-th of every n videos (sorted sources; a SLURM array task's share:
  tasks never write the same video, and each keeps its own ``failed_videos-i-of-n.json``).
- ``store``: a feature store to write into (its dtype and compression; ``out`` is then ignored);
  ``on_stored(ref, result, store_meta)`` after each video is written.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vid_assets import engine
from vid_assets.engine import VideoResult
from vid_assets.extractors import Extractor
from vid_assets.fit import PipelineConfig, fit_config
from vid_assets.media import VideoRef, probe, scan_folder
from vid_assets.media.opening import StreamProcessor, registered
from vid_assets.progress import FrameCounter, ProgressHook
from vid_assets.store import FeatureStore, open_store
from vid_assets.store.exports import npy_names, rows, write_npy
from vid_assets.store.remote import is_url

FORMATS = ("zarr", "npy")


def expand(sources: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Files and URLs as given; folders as the video files under them (recursive, sorted)."""
    out: list[str] = []
    for s in sources:
        p = Path(s)
        if "://" not in str(s) and p.is_dir():
            out += sorted(str(f) for f, _ in scan_folder(p, settle_s=0))  # one-shot: what is there now
        else:
            out.append(str(s))
    return out


def _write_report(target: Path | str, name: str, failed: list[dict]) -> None:
    """``failed_videos.json`` beside the output (atomically on disk; one PUT on an object store)."""
    text = json.dumps(failed, indent=2)
    if is_url(target):
        import fsspec

        with fsspec.open(f"{str(target).rstrip('/')}/{name}", "w") as f:
            f.write(text)
        return
    report = Path(target) / name
    tmp = report.with_suffix(".json.tmp")
    tmp.write_text(text)
    os.replace(tmp, report)


def _expected_frames(uri: str, config: PipelineConfig) -> int:
    """Frames the plan will sample from ``uri`` (0 when it cannot be told: the video fails, or
    only decoding tells, as for key frames)."""
    try:
        info = probe(uri)
    except Exception:  # noqa: BLE001 - the decode reports why
        return 0
    return config.plan.expected_frames(info.duration_s, info.frames, info.avg_fps) or 0


def _already_done(
    ref: VideoRef, out: Path, fmt: str, store, config: PipelineConfig, extractor_id: str, npy_name: str
) -> bool:
    if fmt == "npy":
        return (out / npy_name).exists()
    if not store.has_video(ref.key):
        return False
    attrs = store.video_attrs(ref.key)
    return (
        attrs.get("extractor") == extractor_id
        and attrs.get("sampling_plan") == config.plan.to_dict()
        and attrs.get("clip_spec") == config.clip.to_dict()
    )


def extract(
    sources: Sequence[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str],
    extractor: str | Extractor = "efficientnet_lite0",
    extractor_args: dict | None = None,
    format: str = "zarr",
    device: str = "auto",
    batch_size: int = 0,
    progress: ProgressHook | None = None,
    on_pass: Callable[[int], None] | None = None,
    on_video: Callable[[int, int], None] | None = None,
    on_stored: Callable[[VideoRef, VideoResult, dict], None] | None = None,
    num_workers: int | None = None,
    stream_processor: StreamProcessor | None = None,
    shard: tuple[int, int] | None = None,
    store: FeatureStore | None = None,
    **plan: Any,
) -> dict:
    """Features of every video in ``sources`` (files, folders, URLs) into ``out``; the arguments
    are described in the module docstring. Returns ``{"done", "skipped", "failed", "seconds",
    "out", "frames"}``."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    with registered(stream_processor):  # this call's URLs go to it first
        ext = _extractor(extractor, device, batch_size, extractor_args)
        config = fit_config(ext, **plan)
        format, target, store = _output(out, format, store)
        refs, failed, duplicates = _refs(sources, shard)
        names = npy_names((r.key, r.user_id, r.content_hash) for r in refs)  # same names as `export npy`
        todo = [r for r in refs if not _already_done(r, target, format, store, config, ext.id, names[r.key])]
        # the total needs each video's duration: probed only when a hook will be told it
        expected = sum(_expected_frames(r.uri, config) for r in todo) if progress is not None else 0
        frames = FrameCounter(progress, expected)
        t0, done, info = time.perf_counter(), 0, ext.describe()
        if store is not None and ext.label_set:
            store.save_label_set(ext.label_set, ext.labels)

        def passed(clips: int) -> None:
            frames.advance(clips * config.clip.stride)  # sampled frames a clip moves on by
            if on_pass is not None:
                on_pass(clips)

        options = {} if num_workers is None else {"num_workers": num_workers}
        feed = engine.decode_feed([r.uri for r in todo], config, ext, **options)
        for finished, result in enumerate(engine.run(feed, ext, config, on_pass=passed), start=1):
            ref = todo[result.index]
            if result.ok:
                npy = target / names[ref.key] if store is None else None
                done += _write(ref, result, store, npy, info, config, on_stored)
            if not result.ok:
                failed.append({"user_id": ref.user_id, "source": ref.uri, "id": ref.key} | _why(result))
            if on_video is not None:
                on_video(finished, len(todo))
        frames.finish()
        _write_report(target, _report_name(shard), failed)
        summary = {"done": done, "skipped": len(refs) - len(todo) + duplicates, "failed": failed}
        return summary | {"seconds": time.perf_counter() - t0, "out": str(target), "frames": frames.total}


def _extractor(extractor: str | Extractor, device: str, batch_size: int, args: dict | None) -> Extractor:
    from vid_assets.extractors.loading import load_extractor

    if isinstance(extractor, Extractor):
        return extractor
    return load_extractor(extractor, device=device, batch_size=batch_size, args=args)


def _why(result) -> dict:
    return {"stage": result.stage, "reason": result.error}


def _report_name(shard: tuple[int, int] | None) -> str:
    """Each SLURM array task keeps its own report: tasks never write one file at once."""
    return "failed_videos.json" if shard is None else f"failed_videos-{shard[0]}-of-{shard[1]}.json"


def _output(out, format: str, store: FeatureStore | None):
    """``(format, target folder or URL, store or None)``: a given store wins; zarr opens one at ``out``."""
    if format == "npy" and is_url(out):
        raise ValueError(f"npy output is a local folder (got {out}); write zarr to an object store instead")
    if store is None and format == "zarr":
        store = open_store(out)  # a folder, or an object-store URL (s3://bucket/features.zarr)
    target = store.root if store is not None else Path(out)
    if not is_url(target):
        target = Path(target)
        target.mkdir(parents=True, exist_ok=True)
    return ("zarr" if store is not None else format), target, store


def _refs(sources, shard: tuple[int, int] | None) -> tuple[list[VideoRef], list[dict], int]:
    """The videos to consider (this shard's), those that could not be opened, and how many
    duplicates (the same video named twice) were dropped."""
    listed = expand(sources)
    if shard is not None:
        i, n = shard
        if not 0 <= i < n:
            raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {shard}")
        listed = listed[i::n]
    refs, failed = [], []
    for s in listed:
        try:
            refs.append(VideoRef.from_uri(s))
        except (OSError, ValueError) as e:  # vanished, unreadable, unreachable
            failed.append({"source": s, "stage": "open", "reason": f"{type(e).__name__}: {e}"})
    unique = list({r.key: r for r in refs}.values())
    return unique, failed, len(refs) - len(unique)


def _write(ref: VideoRef, result, store, npy_path, info: dict, config, on_stored) -> int:
    """One video's result into the store (or its ``.npy``): 1, or 0 with the failure on ``result``."""
    from vid_assets.results import store_result

    try:
        if store is not None:
            meta = store_result(ref, result, store, info, config).meta
            if on_stored is not None:
                on_stored(ref, result, meta)
        else:
            write_npy(npy_path, rows(result.features))
        return 1
    except Exception as e:  # noqa: BLE001 - one video's write fails that video only
        result.error, result.stage = f"{type(e).__name__}: {e}", "store"
        return 0
