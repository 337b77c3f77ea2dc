"""Build the Definitions object; ``vid_assets.definitions`` calls this with the defaults."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence

import dagster as dg

from vid_assets import settings

# Dagster hands a run's events to the event log in batches only when this is set (its default, 0,
# stores them one by one); the project's SQLite storage (dagster.yaml) and Postgres write a batch
# at once. Set here because every run process loads these definitions before it executes.
os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "1000")
from vid_assets.extractors import input_spec, spec_imports
from vid_assets.pipeline.assets import (
    embed_batches_job,
    embed_videos_job,
    hub_dataset,
    publish_job,
    training_view,
    training_view_job,
    video_assets,
)
from vid_assets.pipeline.resources import (
    ExtractorResource,
    FeatureStoreResource,
    HubResource,
    SamplingResource,
    WorkspaceResource,
)
from vid_assets.pipeline.sensors import build_publish_sensor, build_resume_sensor, build_videos_sensor


def local_executor(start_method: str | None = None, preload: Sequence[str] = ()) -> dg.ExecutorDefinition:
    """The multiprocess executor, one process per step, started by ``start_method``
    (default ``$VID_ASSETS_STEP_START`` or ``forkserver``); ``preload``: more modules for the
    forkserver to import (``build_definitions`` passes those the extractor's input spec needs).

    ``forkserver``: steps fork from a server that imported this module (torch, PyAV, zarr, Dagster;
    it builds no Definitions, so a user's own definitions module is not second-guessed) once per run;
    a spawned step re-imports them all, ~5 s per step on a 2-core machine (a one-video run of all six
    assets: 50 s -> 22 s). Importing torch starts neither its thread pool nor CUDA, so forking is
    safe. A forkserver keeps the environment it started with: in a process that runs jobs one after
    another (``execute_job`` in a notebook), ``VID_ASSETS_*`` changes after the first run reach no
    step. ``spawn`` serves both cases, and a library that misbehaves after a fork.
    """
    method = start_method or os.environ.get("VID_ASSETS_STEP_START") or "forkserver"
    if method == "forkserver":
        config = {"forkserver": {"preload_modules": ["vid_assets.pipeline.definitions", *preload]}}
    elif method == "spawn":
        config = {"spawn": {}}
    else:
        raise ValueError(f"VID_ASSETS_STEP_START must be forkserver or spawn, not {method!r}")
    return dg.multiprocess_executor.configured({"start_method": config}, name=f"multiprocess_{method}")


def default_executor(extractor: ExtractorResource, sampling: SamplingResource) -> dg.ExecutorDefinition:
    """``VID_ASSETS_EXECUTOR``: in-process (default) or the multiprocess ``local_executor``, whose
    step processes load these definitions, whose code versions hold the model's input spec: what
    answering it imports (timm, torchvision) the forkserver imports once per run, not per step."""
    if settings.executor() == "in_process":
        return dg.in_process_executor
    return local_executor(preload=spec_imports(extractor.name) if sampling.fits_model() else ())


def _short_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:8]


def versioned(assets: list[dg.AssetsDefinition], sampling: SamplingResource, extractor: ExtractorResource, store):
    """Code versions that include the configuration each asset's output depends on.

    Changing the sampling plan, crops or model (env/config at load time) changes these versions, so
    the UI marks exactly the affected partitions stale and only those recompute.
    """
    fit = input_spec(extractor.name, build=False) if sampling.fits_model() else None
    if sampling.fits_model() and fit is None:
        # a factory declaring no input spec would be built here, in every process that loads these
        # definitions: version by the settings and the model's name instead of the fitted sizes
        plan = clip = {**sampling.model_dump(), "fitted_to": extractor.name}
    else:
        cfg = sampling.config(fit)
        plan, clip = cfg.plan.to_dict(), cfg.clip.to_dict()
    if sampling.mode == "segments":  # frames record their segment and clips stay inside one
        plan, clip = {**plan, "segments_kept": True}, {**clip, "within_segments": True}
    parts = {
        "decoded_frames": plan,
        "clip_tensors": clip,
        "clip_embeddings": {
            "extractor": extractor.name,
            "precision": extractor.precision,
            "top_k": sampling.top_k,
            # only when set, so the versions of every run made before the field existed stay
            **({"output": extractor.output} if extractor.output != "auto" else {}),
        },
        "stored_features": {"dtype": store.dtype, "level": store.compression_level},
    }

    def bump(spec: dg.AssetSpec) -> dg.AssetSpec:
        extra = parts.get(spec.key.to_user_string())
        if extra is None:
            return spec
        return spec.replace_attributes(code_version=f"{spec.code_version or '1'}+{_short_hash(extra)}")

    return dg.map_asset_specs(bump, assets)


def build_definitions(
    *,
    videos_dir: str | None = None,
    work_dir: str | None = None,
    store_dir: str | None = None,
    extractor: ExtractorResource | None = None,
    sampling: SamplingResource | None = None,
    hub: HubResource | None = None,
    executor: dg.ExecutorDefinition | None = None,
) -> dg.Definitions:
    workspace = WorkspaceResource(work_dir=work_dir) if work_dir else WorkspaceResource()
    store = FeatureStoreResource(root=store_dir) if store_dir else FeatureStoreResource()
    sampling = sampling or SamplingResource()
    extractor = extractor or ExtractorResource()
    return dg.Definitions(
        assets=[*versioned(video_assets, sampling, extractor, store), training_view, hub_dataset],
        jobs=[embed_videos_job, embed_batches_job, training_view_job, publish_job],
        sensors=[build_videos_sensor(videos_dir), build_resume_sensor(), build_publish_sensor()],
        resources={
            "workspace": workspace,
            "feature_store": store,
            "sampling": sampling,
            "extractor": extractor,
            "hub": hub or HubResource(),
        },
        # Local default: each run in one process (the four video assets are one step; a process per
        # step only added its start-up: benchmarks/RESULTS.md), runs queued by the instance and
        # limited by the `gpu` pool. VID_ASSETS_EXECUTOR=multiprocess gives a process per step;
        # swap for dagster_celery / dagster_k8s executors to scale out (see README).
        executor=executor or default_executor(extractor, sampling),
    )
