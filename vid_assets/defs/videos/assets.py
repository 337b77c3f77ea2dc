"""The four per-video assets (decode -> clip tensors -> embeddings -> feature store), per feature
set, and the jobs that run them.

The four are one ``multi_asset`` step (``defs/videos/video_run.py`` runs it): selecting the whole chain
streams videos through the engine, a subset reads what an earlier run kept. They stay four assets
in the UI, with their own materializations, metadata, staleness and checks per video.
"""

import warnings

import dagster as dg

from vid_assets import settings
from vid_assets.defs.resources import (
    ExtractorResource,
    FeatureStoreResource,
    SamplingResource,
    WorkspaceResource,
    refuse_feature_overrides,
)
from vid_assets.defs.videos.partitions import videos_partitions
from vid_assets.feature_sets import FeatureSet

GROUP = "video_features"
# Transient trouble (a busy disk, a flaky mount, an OOM-killed step) is retried; a bad video is not:
# it raises dg.Failure(allow_retries=False) in decoded_frames.
RETRY = dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL)
# Backfills (and the sensor) run up to this many videos per run through all four assets: one
# process start, one model load, and passes across videos. A run's fixed cost (process start,
# fork, definitions, model load: 1.3-2.7 s on 2 cores) is what a video's work must amortize: a 2-s
# video takes ~60 ms of engine time there, so 512 videos per run keep it under ~5 %
# (benchmarks/backfill.py, RESULTS.md). Memory does not grow with it (videos stream); a retry,
# of the step or of the run, skips what the failed attempt stored (resume.py).
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


def as_metadata(d: dict) -> dict:
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
    one step (``defs/videos/video_run.py`` runs it): a run of the whole chain streams its videos
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
        from vid_assets.defs.videos.group_run import GroupRun

        refuse_feature_overrides(lead, baseline or {}, sampling, extractor, feature_store)
        yield from GroupRun(context, group, workspace, sampling, extractor, feature_store).execute()

    return video_features


def stages_selection(*stages: str) -> dg.AssetSelection:
    """Every feature set's assets of these stages (selected by tag, so jobs need no list of sets)."""
    selection = dg.AssetSelection.tag(STAGE_TAG, stages[0])
    for stage in stages[1:]:
        selection = selection | dg.AssetSelection.tag(STAGE_TAG, stage)
    return selection


embed_videos_job = dg.define_asset_job(
    "embed_videos",
    selection=stages_selection(*STAGES),
    description="Decode, clip, embed and store videos in every feature set: one partition, or a range of up to"
    " VID_ASSETS_BATCH per run.",
)

embed_batches_job = dg.define_asset_job(
    "embed_batches",
    selection=stages_selection("clip_embeddings", "stored_features"),
    description="Embed + store many decoded videos per run (launch as a backfill; VID_ASSETS_BATCH per run).",
)
