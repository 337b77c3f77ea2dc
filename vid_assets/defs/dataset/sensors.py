"""Publishing when enough new videos were stored."""

import dagster as dg


def build_publish_sensor(
    *, minimum_interval_seconds: int = 300, default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED
) -> dg.SensorDefinition:
    """Publish when ``hub.publish_every_n_videos`` videos were stored since the last publish.

    Publishing reads only committed video groups (writes become visible by one rename), so a run
    started while other partitions are still being written publishes a consistent snapshot.
    """
    from vid_assets.defs.dataset.assets import publish_job
    from vid_assets.defs.resources import FeatureStoreResource, HubResource

    @dg.sensor(
        name="publish_when_new_videos",
        job=publish_job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Requests a publish run once N new videos are in the feature store.",
    )
    def publish_when_new_videos(
        context: dg.SensorEvaluationContext, feature_store: FeatureStoreResource, hub: HubResource
    ):
        stored = len(feature_store.store().list_videos())
        event = context.instance.get_latest_materialization_event(dg.AssetKey("hub_dataset"))
        published = 0
        if event is not None and event.asset_materialization is not None:
            entry = event.asset_materialization.metadata.get("num_videos")
            published = int(entry.value) if entry is not None else 0
        waiting = stored - published
        if waiting < hub.publish_every_n_videos:
            return dg.SkipReason(f"{waiting} new video(s) since the last publish (< {hub.publish_every_n_videos})")
        return dg.RunRequest(run_key=f"publish-{stored}", tags={"vid_assets/new_videos": str(waiting)})

    return publish_when_new_videos
