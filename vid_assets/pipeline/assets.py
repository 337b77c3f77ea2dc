"""The four per-video assets: decode -> clip tensors -> embeddings -> feature store.

Each asset calls one function in ``vid_assets.stages`` and reports what it did as metadata; data
moves between them through the artifact store (``deps=``), never through pickles.
"""

import base64
import hashlib
import os
import time
import warnings
from pathlib import Path

import dagster as dg

from vid_assets import stages
from vid_assets.media import VideoDecodeError
from vid_assets.pipeline.partitions import videos_partitions
from vid_assets.pipeline.resources import (
    ExtractorResource,
    FeatureStoreResource,
    HubResource,
    SamplingResource,
    WorkspaceResource,
)

GROUP = "video_features"
# Transient trouble (a busy disk, a flaky mount, an OOM-killed step) is retried; a bad video is not:
# it raises dg.Failure(allow_retries=False) in decoded_frames.
RETRY = dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL)
# Backfills (and the sensor) run this many videos per run through all four assets: one run, one
# model load and cross-video forward passes per batch instead of one run per video. A bad video in
# a batch still fails only its own partition (see ``decoded_frames``).
BATCH = int(os.environ.get("VID_ASSETS_BATCH") or os.environ.get("VID_ASSETS_EMBED_BATCH") or "32")
BATCHED = dg.BackfillPolicy.multi_run(max_partitions_per_run=BATCH)
# `backfill_policy` is still marked beta in Dagster 1.13; we chose it knowingly, so its warning (four
# copies, one per asset, in every step process and CLI call) is silenced here and nowhere else.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)
CHECKS = {
    "features_finite": "No NaN/inf in the stored features.",
    "shape_as_declared": "Feature array shape equals the declared shape and the extractor's dim.",
    "timestamps_increasing": "Clip start times strictly increase; every clip ends after it starts.",
    "clip_count_consistent": "Clip count matches what the duration and sampling plan predict.",
}


def _meta(d: dict) -> dict:
    """Plain values -> Dagster metadata (floats rounded, lists as JSON, paths as paths)."""
    out: dict = {}
    for k, v in d.items():
        if isinstance(v, float):
            out[k] = dg.MetadataValue.float(round(v, 4))
        elif isinstance(v, list | dict):
            out[k] = dg.MetadataValue.json(v)
        elif k.endswith("_path"):
            out[k] = dg.MetadataValue.path(str(v))
        else:
            out[k] = v
    return out


def _decode_metadata(meta: dict) -> dict:
    metadata = _meta(meta)
    if meta.get("contact_sheet_path"):
        b64 = base64.b64encode(Path(meta["contact_sheet_path"]).read_bytes()).decode()
        metadata["contact_sheet"] = dg.MetadataValue.md(f"![contact sheet](data:image/jpeg;base64,{b64})")
    return metadata


@dg.asset(
    partitions_def=videos_partitions,
    group_name=GROUP,
    kinds={"pyav", "zarr"},
    # 2: RGB at the source size, then torch's antialiased resize (was swscale's scaled conversion)
    code_version="2",
    retry_policy=RETRY,
    backfill_policy=BATCHED,
    description=(
        "Frames sampled at the configured fps with pts: uint8 RGB, converted by FFmpeg at the source"
        " size, short side resized by torch's antialiased bilinear filter (as torchvision's Resize)."
    ),
)
def decoded_frames(
    context: dg.AssetExecutionContext,
    workspace: WorkspaceResource,
    sampling: SamplingResource,
    extractor: ExtractorResource,
) -> dg.MaterializeResult:
    """One video, or a batch (multi-partition run). A bad video never takes the batch down with it:
    every video is tried; bad ones are recorded (quarantine, failed-videos report). If any failed,
    the good ones are reported as materialized one by one and the step then fails, so Dagster shows
    exactly the bad partitions as failed (their reason in the run's failure event) while the good
    ones are done; ``resume_after_bad_videos`` carries the good ones through the downstream assets.
    """
    catalog = workspace.catalog()
    cfg = sampling.config(extractor)  # the short side fits the model unless set
    keys = context.partition_keys
    done: dict[str, dict] = {}  # key -> decode stats
    failed: dict[str, str] = {}
    for key in keys:
        ref = catalog.get(key)
        try:
            meta = stages.decode_video(ref, cfg.plan, workspace.artifacts(), sampling.decode_time_budget_s)
        except VideoDecodeError as e:
            # Not transient: recorded for the failed-videos report and quarantine, never retried.
            catalog.record_failure(key, type(e).__name__, str(e))
            failed[key] = str(e)
            context.log.error(f"{key}: VideoDecodeError: {e}")
            continue
        catalog.clear_failure(key)
        done[key] = {"source": ref.uri, **meta}
    if failed:
        # the good part of the batch is done: say so per partition, with the code version Dagster
        # would have recorded (runtime-logged materializations carry none, and would look stale)
        version = context.assets_def.code_versions_by_key.get(context.asset_key) or ""
        for key, meta in done.items():
            context.log_event(
                dg.AssetMaterialization(
                    asset_key=context.asset_key,
                    partition=key,
                    metadata=_decode_metadata(meta),
                    tags={"dagster/code_version": version} if version else None,
                )
            )
        first = next(iter(failed))
        raise dg.Failure(
            description=(
                f"VideoDecodeError: {failed[first]}"
                if len(keys) == 1
                else f"{len(failed)} of {len(keys)} videos failed to decode: "
                + "; ".join(f"{k}: {why}" for k, why in failed.items())
            ),
            metadata={
                "failed_partitions": dg.MetadataValue.json(failed),
                "source": catalog.get(first).uri,
                "error_class": "VideoDecodeError",
                "reason": failed[first],
            },
            allow_retries=False,
        )
    if len(keys) == 1:
        return dg.MaterializeResult(metadata=_decode_metadata(done[keys[0]]))
    # A multi-partition step has one metadata set, copied onto every partition of the run; a batch
    # sheet there would store N videos' pictures N times (measured ~6x the bytes of per-video
    # sheets at N=32). So each video's own sheet goes on an observation of its partition: one
    # event per video, its bytes stored once.
    for key, meta in done.items():
        context.log_event(
            dg.AssetObservation(asset_key=context.asset_key, partition=key, metadata=_decode_metadata(meta))
        )
    return dg.MaterializeResult(
        metadata=_meta(
            {
                "videos": len(keys),
                "frames": sum(m.get("frames", 0) for m in done.values()),
                "seconds": sum(m.get("seconds", 0.0) for m in done.values()),
                "frames_by_video": {k: m.get("frames", 0) for k, m in done.items()},
                "contact_sheet": "per video, on this partition's observation: "
                "View all historical events > Observation > Show Markdown",
            }
        )
    )


@dg.asset(
    partitions_def=videos_partitions,
    group_name=GROUP,
    deps=[decoded_frames],
    kinds={"numpy", "zarr"},
    code_version="1",
    retry_policy=RETRY,
    backfill_policy=BATCHED,
    automation_condition=dg.AutomationCondition.eager(),
    description=(
        "Clips of T sampled frames (the model's clip length by default), cropped at its input size"
        " (centre, five, ten or seeded random crops), uint8 [clips, T, crops, S, S, 3]."
    ),
)
def clip_tensors(
    context: dg.AssetExecutionContext,
    workspace: WorkspaceResource,
    sampling: SamplingResource,
    extractor: ExtractorResource,
) -> dg.MaterializeResult:
    # clip length and crop size fit the model (a video model's T frames) unless set; read from
    # its config, so this CPU step loads no weights
    spec, artifacts = sampling.config(extractor).clip, workspace.artifacts()
    metas = {key: stages.build_clips(key, spec, artifacts) for key in context.partition_keys}
    if len(metas) == 1:
        return dg.MaterializeResult(metadata=_meta(next(iter(metas.values()))))
    return dg.MaterializeResult(
        metadata=_meta(
            {
                "videos": len(metas),
                "clips": sum(m["clips"] for m in metas.values()),
                "seconds": sum(m["seconds"] for m in metas.values()),
                "clips_by_video": {k: m["clips"] for k, m in metas.items()},
            }
        )
    )


@dg.asset(
    partitions_def=videos_partitions,
    group_name=GROUP,
    deps=[clip_tensors],
    kinds={"pytorch", "timm"},
    pool="gpu",
    backfill_policy=BATCHED,
    code_version="1",
    retry_policy=RETRY,
    automation_condition=dg.AutomationCondition.eager(),
    description="Per-clip features from the configured extractor (float16) and, for classifiers, top-k labels.",
)
def clip_embeddings(
    context: dg.AssetExecutionContext,
    workspace: WorkspaceResource,
    sampling: SamplingResource,
    extractor: ExtractorResource,
) -> dg.MaterializeResult:
    model = extractor.load(context.log)
    keys = context.partition_keys  # one, or a batch of videos in a multi-partition (backfill) run
    per_video = stages.embed_videos(keys, model, workspace.artifacts(), sampling.top_k, text_model=extractor.text_model)
    if len(keys) == 1:
        # data version = which weights (id includes the revision) embedded which bytes with which plan
        ref = workspace.catalog().get(keys[0])
        # (and which of its outputs: "head" added only, so pooled features keep their versions)
        weights = model.id if model.output == "pooled" else f"{model.id}|{model.output}"
        version = hashlib.sha256(
            f"{weights}|{ref.content_hash}|{sampling.config(model.input_spec)}".encode()
        ).hexdigest()[:16]
        return dg.MaterializeResult(metadata=_meta(per_video[keys[0]]), data_version=dg.DataVersion(version))
    clips = sum(m["clips"] for m in per_video.values())
    seconds = sum(m["seconds"] for m in per_video.values())
    return dg.MaterializeResult(
        metadata=_meta(
            {
                "videos": len(keys),
                "clips": clips,
                "extractor": model.id,
                "device": str(model.device),
                "seconds": seconds,
                "clips_per_s": clips / max(seconds, 1e-9),
                "clips_by_video": {k: m["clips"] for k, m in per_video.items()},
            }
        )
    )


@dg.asset(
    partitions_def=videos_partitions,
    group_name=GROUP,
    deps=[clip_embeddings],
    kinds={"zarr"},
    code_version="1",
    retry_policy=RETRY,
    automation_condition=dg.AutomationCondition.eager(),
    check_specs=[dg.AssetCheckSpec(name, asset="stored_features", description=d) for name, d in CHECKS.items()],
    backfill_policy=BATCHED,
    description="The video's group in the Zarr feature store: features, clip timestamps, provenance.",
)
def stored_features(
    context: dg.AssetExecutionContext,
    workspace: WorkspaceResource,
    feature_store: FeatureStoreResource,
) -> dg.MaterializeResult:
    from vid_assets.store.validate import validate_video

    store = feature_store.store()
    keys = context.partition_keys
    metas = {k: stages.store_video(k, workspace.artifacts(), store) for k in keys}
    outcomes: dict[str, list] = {}
    for k in keys:
        for o in validate_video(store.open_video(k)):
            outcomes.setdefault(o.name, []).append((k, o))
    checks = [  # one result per check; in a batch run it fails if any video fails, naming them
        dg.AssetCheckResult(
            check_name=name,
            passed=all(o.passed for _, o in results),
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "detail": "; ".join(f"{k}: {o.detail}" for k, o in results if not o.passed or len(keys) == 1)
                or "all passed",
                "partitions": len(results),
            },
        )
        for name, results in outcomes.items()
    ]
    meta = metas[keys[0]] if len(keys) == 1 else {"videos": len(keys), "clips": sum(m["clips"] for m in metas.values())}
    return dg.MaterializeResult(metadata=_meta(meta), check_results=checks)


@dg.asset(
    group_name=GROUP,
    deps=[stored_features],
    kinds={"zarr"},
    code_version="2",  # 2: the view's segment column (layout 2)
    description="All stored videos as flat, chunk-aligned arrays for training (incremental append).",
)
def training_view(feature_store: FeatureStoreResource) -> dg.MaterializeResult:
    from vid_assets.store.training import update_training_view

    t0 = time.perf_counter()
    store = feature_store.store()
    result = update_training_view(store, feature_store.training_view_path(), chunk_rows=feature_store.train_chunk_rows)
    return dg.MaterializeResult(
        metadata=_meta(
            {
                "mode": result["mode"],
                "videos_added": len(result["added"]),
                "videos_changed": len(result["changed"]),
                "videos_removed": len(result["removed"]),
                "num_rows": result["num_rows"],
                "num_videos": result["num_videos"],
                "feature_shape": result["feature_shape"] or [],
                "view_path": feature_store.training_view_path(),
                "seconds": time.perf_counter() - t0,
            }
        )
    )


video_assets = [decoded_frames, clip_tensors, clip_embeddings, stored_features]

embed_videos_job = dg.define_asset_job(
    "embed_videos",
    selection=dg.AssetSelection.assets(*video_assets),
    description="Decode, clip, embed and store videos: one partition, or a range of up to VID_ASSETS_BATCH per run.",
)

embed_batches_job = dg.define_asset_job(
    "embed_batches",
    selection=dg.AssetSelection.assets(clip_embeddings, stored_features),
    description="Embed + store many decoded videos per run (launch as a backfill; VID_ASSETS_BATCH per run).",
)

training_view_job = dg.define_asset_job(
    "build_training_view",
    selection=dg.AssetSelection.assets(training_view),
    description="Append newly stored videos to the training view (rebuilds only when a video changed).",
)


@dg.asset(
    group_name=GROUP,
    deps=[training_view],
    kinds={"huggingface", "parquet"},
    code_version="2",  # 2: the manifest names the shard columns (segments plans add `segment`)
    retry_policy=dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL),
    description="The feature dataset on the Hugging Face Hub (or a local mirror / dry run), incrementally.",
)
def hub_dataset(context: dg.AssetExecutionContext, feature_store: FeatureStoreResource, hub: HubResource):
    from vid_assets.hub import PublishError, publish

    try:
        result = publish(
            feature_store.store(),
            repo_id=hub.repo_id or None,
            target_dir=None if hub.repo_id else hub.target_dir,
            token=hub.token,
            private=hub.private,
            revision=hub.revision or None,
            dry_run=hub.dry_run,
            out_dir=hub.dry_run_dir,
            license=hub.license,
            echo=context.log.info,
        )
    except PublishError as e:
        raise dg.Failure(description=str(e), allow_retries="HTTP 429" in str(e) or "cannot reach" in str(e)) from None
    plan = result.plan
    return dg.MaterializeResult(
        metadata=_meta(
            {
                "target": result.target,
                "committed": result.committed,
                "dry_run": hub.dry_run,
                "commit_message": plan.message,
                "files_added": sorted(plan.add),
                "files_deleted": plan.delete,
                "new_videos": len(plan.new_videos),
                "num_videos": plan.manifest.get("num_videos", 0),
                "num_clips": plan.manifest.get("num_clips", 0),
                "commit_url": result.commit_url or "",
            }
        )
    )


publish_job = dg.define_asset_job(
    "publish_dataset",
    selection=dg.AssetSelection.assets(training_view, hub_dataset),
    description="Update the training view, then publish the dataset (Hub, local mirror or dry run).",
)
