"""The four per-video assets (decode -> clip tensors -> embeddings -> feature store) and the
dataset assets after them.

The four are one ``multi_asset`` step (``pipeline/video_run.py`` runs it): selecting the whole chain
streams videos through the engine, a subset reads what an earlier run kept. They stay four assets
in the UI, with their own materializations, metadata, staleness and checks per video.
"""

import time
import warnings

import dagster as dg

from vid_assets import settings
from vid_assets.feature_sets import FeatureSet
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
# Backfills (and the sensor) run up to this many videos per run through all four assets: one
# process start, one model load, and passes across videos. A run's fixed cost (process start,
# imports, model load, ~5 s on 2 cores) is what a video's work must amortize: a 10-s video takes
# ~0.25 s of engine time there, so 256 videos per run keep it under ~10 % (benchmarks/backfill.py,
# RESULTS.md). Memory does not grow with it (videos stream); a transient failure retries the run.
BATCH = settings.batch()
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


STAGES = ("decoded_frames", "clip_tensors", "clip_embeddings", "stored_features")
STAGE_TAG = "vid_assets/stage"  # every set's chain carries it: jobs and sensors select by it
SET_TAG = "vid_assets/feature_set"
DESCRIPTIONS = {
    "decoded_frames": "Frames sampled by the set's plan, with pts: uint8 RGB, converted by FFmpeg at the source size,"
    " short side resized by torch's antialiased bilinear filter (as torchvision's Resize). Streamed to the model"
    " when the run selects the whole chain; kept in the work folder only when a run stops here.",
    "clip_tensors": "Clips of T sampled frames (the model's clip length by default), cropped at its input size"
    " (centre, five, ten or seeded random crops), uint8 [clips, T, crops, S, S, 3].",
    "clip_embeddings": "Per-clip features from the set's extractor and, for classifiers, top-k labels.",
    "stored_features": "The video's group in the set's Zarr feature store: features, clip timestamps, provenance.",
}
# 2: RGB at the source size, then torch's antialiased resize (was swscale's scaled conversion)
BASE_VERSIONS = {"decoded_frames": "2", "clip_tensors": "1", "clip_embeddings": "1", "stored_features": "1"}
KINDS = {
    "decoded_frames": {"pyav"},
    "clip_tensors": {"numpy"},
    "clip_embeddings": {"pytorch"},
    "stored_features": {"zarr"},
}


def stage_key(fset: FeatureSet, stage: str) -> dg.AssetKey:
    """A set's asset for ``stage``: unprefixed for the default set, ``<set>/<stage>`` otherwise."""
    return dg.AssetKey([*fset.key_prefix, stage])


def video_specs(fset: FeatureSet, versions: dict[str, str] | None = None) -> list[dg.AssetSpec]:
    """The set's four per-video assets; ``versions``: each stage's code version (config included)."""
    specs = []
    for i, stage in enumerate(STAGES):
        about = (
            f"[{fset.name}: {fset.description}] "
            if fset.description
            else f"[{fset.name}] "
            if not fset.is_default
            else ""
        )
        specs.append(
            dg.AssetSpec(
                stage_key(fset, stage),
                deps=[stage_key(fset, STAGES[i - 1])] if i else [],
                group_name=fset.group,
                kinds=KINDS[stage] | ({"timm"} if stage == "clip_embeddings" and fset.is_default else set()),
                code_version=(versions or {}).get(stage, BASE_VERSIONS[stage]),
                description=about + DESCRIPTIONS[stage],
                skippable=True,
                tags={STAGE_TAG: stage, SET_TAG: fset.name},
                automation_condition=dg.AutomationCondition.eager() if i else None,
            )
        )
    return specs


DEFAULT_SET = FeatureSet()
FRAMES_KEY, CLIPS_KEY, EMBED_KEY, STORE_KEY = (stage_key(DEFAULT_SET, s) for s in STAGES)


def build_video_features(
    sets: FeatureSet | list[FeatureSet], versions: dict[str, dict[str, str]] | None = None, baseline: dict | None = None
) -> dg.AssetsDefinition:
    """The four per-video assets of each of ``sets`` (feature sets that share a sampling plan) as
    one step (``pipeline/video_run.py`` runs it): a run of the whole chain streams its videos
    through the engine (decode -> clips -> model -> store) with nothing written in between, and
    when it selects several of the sets, one decode of each video feeds all their models; a run
    of part of a chain reads the intermediates an earlier part kept, or decodes again. Each video
    gets its own materializations, metadata and contact sheet per set; a bad video fails only its
    own partitions. ``versions``: each set's stage code versions; ``baseline``: the deployment's
    ``sampling``, ``extractor`` and ``feature_store`` resources, against which a run's config is
    checked (feature-changing fields are the sets', not the run's)."""
    group = [sets] if isinstance(sets, FeatureSet) else list(sets)
    versions = versions or {}
    # Checks are per video (a result per partition, whatever the run size): partitioned checks are a
    # preview in 1.13, chosen for that; their warning is silenced here and nowhere else.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Specifying a partitions_def", category=dg.PreviewWarning)
        checks = [
            dg.AssetCheckSpec(
                name, asset=stage_key(fset, "stored_features"), description=d, partitions_def=videos_partitions
            )
            for fset in group
            for name, d in CHECKS.items()
        ]
    lead = next((f for f in group if f.is_default), group[0])
    name = "video_features" if lead.is_default else f"{lead.name}__video_features"

    @dg.multi_asset(
        name=name,
        specs=[spec for fset in group for spec in video_specs(fset, versions.get(fset.name))],
        check_specs=checks,
        partitions_def=videos_partitions,
        can_subset=True,
        pool="gpu",
        retry_policy=RETRY,
        backfill_policy=BATCHED,
    )
    def video_features(
        context: dg.AssetExecutionContext,
        workspace: WorkspaceResource,
        sampling: SamplingResource,
        extractor: ExtractorResource,
        feature_store: FeatureStoreResource,
    ):
        from vid_assets.pipeline.group_run import GroupRun
        from vid_assets.pipeline.video_run import refuse_feature_overrides

        refuse_feature_overrides(lead, baseline or {}, sampling, extractor, feature_store)
        yield from GroupRun(context, group, workspace, sampling, extractor, feature_store).execute()

    return video_features


def build_training_view(fset: FeatureSet) -> dg.AssetsDefinition:
    """The set's stored videos as flat, chunk-aligned arrays for training (its own view: sets
    never mix rows)."""

    @dg.asset(
        key=stage_key(fset, "training_view"),
        group_name=fset.group,
        deps=[stage_key(fset, "stored_features")],
        kinds={"zarr"},
        code_version="2",  # 2: the view's segment column (layout 2)
        tags={STAGE_TAG: "training_view", SET_TAG: fset.name},
        description="All stored videos of the set as flat, chunk-aligned arrays for training (incremental append).",
    )
    def training_view(feature_store: FeatureStoreResource) -> dg.MaterializeResult:
        from vid_assets.store.training import update_training_view

        t0 = time.perf_counter()
        store = feature_store.store(fset)
        path = feature_store.training_view_path(fset)
        result = update_training_view(store, path, chunk_rows=feature_store.train_chunk_rows)
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
                    "view_path": path,
                    "seconds": time.perf_counter() - t0,
                }
            )
        )

    return training_view


training_view = build_training_view(DEFAULT_SET)
TRAINING_VIEW_KEY = training_view.key


def _stages(*stages: str) -> dg.AssetSelection:
    """Every feature set's assets of these stages (selected by tag, so jobs need no list of sets)."""
    selection = dg.AssetSelection.tag(STAGE_TAG, stages[0])
    for stage in stages[1:]:
        selection = selection | dg.AssetSelection.tag(STAGE_TAG, stage)
    return selection


embed_videos_job = dg.define_asset_job(
    "embed_videos",
    selection=_stages(*STAGES),
    description="Decode, clip, embed and store videos in every feature set: one partition, or a range of up to"
    " VID_ASSETS_BATCH per run.",
)

embed_batches_job = dg.define_asset_job(
    "embed_batches",
    selection=_stages("clip_embeddings", "stored_features"),
    description="Embed + store many decoded videos per run (launch as a backfill; VID_ASSETS_BATCH per run).",
)

training_view_job = dg.define_asset_job(
    "build_training_view",
    selection=_stages("training_view"),
    description="Append newly stored videos to each set's training view (rebuilds only when a video changed).",
)


@dg.asset(
    group_name=GROUP,
    deps=[TRAINING_VIEW_KEY],
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
    selection=dg.AssetSelection.assets(TRAINING_VIEW_KEY, hub_dataset),
    description="Update the training view, then publish the dataset (Hub, local mirror or dry run).",
)
