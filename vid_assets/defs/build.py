"""Build the Definitions object; ``vid_assets.definitions`` calls this with the defaults."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence

import dagster as dg

from vid_assets import settings
from vid_assets.media.modes import segmented

# Dagster hands a run's events to the event log in batches only when this is set (its default, 0,
# stores them one by one); the project's SQLite storage (dagster.yaml) and Postgres write a batch
# at once. Set here because every run process loads these definitions before it executes.
os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "1000")
from vid_assets.defs.dataset.assets import (
    build_training_view,
    hub_dataset,
    publish_job,
    training_view,
    training_view_job,
)
from vid_assets.defs.dataset.sensors import build_publish_sensor
from vid_assets.defs.resources import (
    ExtractorResource,
    FeatureStoreResource,
    HubResource,
    SamplingResource,
    WorkspaceResource,
    default_set,
    feature_fields,
)
from vid_assets.defs.videos.assets import BASE_VERSIONS, build_video_features, embed_batches_job, embed_videos_job
from vid_assets.defs.videos.sensors import build_resume_sensor, build_videos_sensor
from vid_assets.extractors import spec_imports
from vid_assets.extractors.registry import resolve_alias
from vid_assets.feature_sets import FeatureSet, load_sets


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
    method = start_method or settings.step_start()
    if method == "forkserver":
        config = {"forkserver": {"preload_modules": ["vid_assets.defs.build", *preload]}}
    elif method == "spawn":
        config = {"spawn": {}}
    else:
        raise ValueError(f"VID_ASSETS_STEP_START must be forkserver or spawn, not {method!r}")
    return dg.multiprocess_executor.configured({"start_method": config}, name=f"multiprocess_{method}")


def default_executor(sets: Sequence[FeatureSet]) -> dg.ExecutorDefinition:
    """``VID_ASSETS_EXECUTOR``: in-process (default) or the multiprocess ``local_executor``, whose
    step processes load these definitions, whose code versions hold the models' input specs: what
    answering them imports (timm, torchvision) the forkserver imports once per run, not per step."""
    if settings.executor() == "in_process":
        return dg.in_process_executor
    preload = sorted({m for s in sets if s.fits_model() for m in spec_imports(resolve_alias(s.extractor))})
    return local_executor(preload=preload)


def _short_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:8]


def set_versions(fset: FeatureSet) -> dict[str, str]:
    """Each stage's code version: its code's version plus the set's fields its output depends on.

    Changing a set's plan, crops, model or storage changes these versions, so the UI and
    ``vid-assets status`` mark exactly that set's affected partitions stale and only those recompute.
    The default set's versions are what they were before sets existed, so its history stays fresh.
    """
    fit = fset.input_spec(build=False)
    if fit is None:
        # a factory declaring no input spec would be built here, in every process that loads these
        # definitions: version by the fields and the model's name instead of the fitted sizes
        plan = clip = {**SamplingResource(**_sampling_fields(fset)).model_dump(), "fitted_to": fset.extractor}
    else:
        cfg = fset.config(fit)
        plan, clip = cfg.plan.to_dict(), cfg.clip.to_dict()
    if segmented(fset.sampling.get("mode", "fps")):  # frames record their segment and clips stay inside one
        plan, clip = {**plan, "segments_kept": True}, {**clip, "within_segments": True}
    parts = {
        "decoded_frames": plan,
        "clip_tensors": clip,
        "clip_embeddings": {
            "extractor": fset.extractor,
            "precision": fset.precision,
            "top_k": fset.sampling.get("top_k", 5),
            # only when set, so the versions of every run made before the field existed stay
            **({"output": fset.output} if fset.output != "auto" else {}),
            **({"args": fset.args} if fset.args else {}),
        },
        "stored_features": {"dtype": fset.dtype, "level": fset.compression_level},
    }
    return {stage: f"{BASE_VERSIONS[stage]}+{_short_hash(extra)}" for stage, extra in parts.items()}


def decode_groups(sets: Sequence[FeatureSet]) -> list[list[FeatureSet]]:
    """Sets whose plans differ at most in the frames' short side, grouped: each group is one step,
    so a run that selects several of its sets decodes each video once for all of them. A set whose
    plan cannot be known without building its model stays alone."""
    groups: dict[str, list[FeatureSet]] = {}
    for fset in sets:
        fit = fset.input_spec(build=False)
        key = fset.name
        if fit is not None:
            key = json.dumps({**fset.config(fit).plan.to_dict(), "short_side": 0}, sort_keys=True, default=str)
        groups.setdefault(key, []).append(fset)
    return list(groups.values())


def _sampling_fields(fset: FeatureSet) -> dict:
    return {k: v for k, v in fset.sampling.items() if k in SamplingResource.model_fields}


def build_definitions(
    *,
    videos_dir: str | None = None,
    work_dir: str | None = None,
    store_dir: str | None = None,
    extractor: ExtractorResource | None = None,
    sampling: SamplingResource | None = None,
    hub: HubResource | None = None,
    executor: dg.ExecutorDefinition | None = None,
    sets: Sequence[FeatureSet] | str | os.PathLike | None = None,
) -> dg.Definitions:
    """The code location: one chain of the four per-video assets and a training view per feature
    set, over the shared ``videos`` partitions, with the sensors, jobs and resources.

    ``sets``: the feature sets (or a YAML file / folder of them); default ``$VID_ASSETS_SETS``. The
    default set comes from ``extractor`` and ``sampling`` unless a YAML declares ``default``."""
    workspace = WorkspaceResource(work_dir=work_dir) if work_dir else WorkspaceResource()
    store = FeatureStoreResource(root=store_dir) if store_dir else FeatureStoreResource()
    sampling = sampling or SamplingResource()
    extractor = extractor or ExtractorResource()
    default = default_set(sampling, extractor, store)
    if sets is None or isinstance(sets, str | os.PathLike):
        paths = [str(sets)] if sets is not None else settings.feature_set_files()
        chosen = list(load_sets(paths, default=default).values())
    else:
        chosen = list(sets) if any(s.is_default for s in sets) else [default, *sets]
    baseline = {
        "sampling": feature_fields(sampling, "sampling"),
        "extractor": feature_fields(extractor, "extractor"),
        "feature_store": feature_fields(store, "feature_store"),
    }
    assets: list = []
    for group in decode_groups(chosen):
        assets.append(build_video_features(group, {s.name: set_versions(s) for s in group}, baseline))
    for fset in chosen:
        assets.append(training_view if fset.is_default else build_training_view(fset))
    return dg.Definitions(
        assets=[*assets, hub_dataset],
        jobs=[embed_videos_job, embed_batches_job, training_view_job, publish_job],
        sensors=[build_videos_sensor(videos_dir), build_resume_sensor(chosen), build_publish_sensor()],
        resources={
            "workspace": workspace,
            "feature_store": store,
            "sampling": sampling,
            "extractor": extractor,
            "hub": hub or HubResource(),
        },
        # Local default: each run in one process (a set's four video assets are one step; a process
        # per step only added its start-up: benchmarks/RESULTS.md), runs queued by the instance and
        # limited by the `gpu` pool. VID_ASSETS_EXECUTOR=multiprocess gives a process per step;
        # swap for dagster_celery / dagster_k8s executors to scale out (see README).
        executor=executor or default_executor(chosen),
        metadata={"feature_sets": dg.MetadataValue.json({s.name: s.to_dict() for s in chosen})},
    )


def sets_of(defs: dg.Definitions) -> dict[str, FeatureSet]:
    """The feature sets a code location was built with (``{name: set}``, the default first)."""
    declared = defs.metadata.get("feature_sets")
    if declared is None:
        return {"default": FeatureSet()}
    return {name: FeatureSet.from_dict(name, body) for name, body in declared.value.items()}
