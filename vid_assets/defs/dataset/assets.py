"""The dataset assets after the per-video chain: each set's training view, and the dataset
published to the Hugging Face Hub."""

import time

import dagster as dg

from vid_assets.defs.resources import FeatureStoreResource, HubResource
from vid_assets.defs.videos.assets import (
    DEFAULT_SET,
    GROUP,
    SET_TAG,
    STAGE_TAG,
    as_metadata,
    stage_key,
    stages_selection,
)
from vid_assets.feature_sets import FeatureSet


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
            metadata=as_metadata(
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


training_view_job = dg.define_asset_job(
    "build_training_view",
    selection=stages_selection("training_view"),
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
        metadata=as_metadata(
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
