"""Build the Definitions object; ``vid_assets.definitions`` calls this with the defaults."""

from __future__ import annotations

import dagster as dg

from vid_assets.pipeline.assets import (
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
from vid_assets.pipeline.sensors import build_publish_sensor, build_videos_sensor


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
    return dg.Definitions(
        assets=[*video_assets, training_view, hub_dataset],
        jobs=[embed_videos_job, training_view_job, publish_job],
        sensors=[build_videos_sensor(videos_dir), build_publish_sensor()],
        resources={
            "workspace": workspace,
            "feature_store": store,
            "sampling": sampling or SamplingResource(),
            "extractor": extractor or ExtractorResource(),
            "hub": hub or HubResource(),
        },
        # Local default: one process per step, runs queued by the instance. Swap for
        # dagster_celery / dagster_k8s executors to scale out (see README).
        executor=executor or dg.multiprocess_executor,
    )
