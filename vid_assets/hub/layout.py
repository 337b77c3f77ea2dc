"""The published repository's layout: its file names, the clips table's columns, the plan's words.

Shared by the plan (what a commit holds), the card (what the repository says about itself) and
the targets (where the files go).
"""

from __future__ import annotations

from vid_assets.media.modes import segmented
from vid_assets.media.plan import SamplingPlan

MANIFEST = "vid_assets_manifest.json"
VIDEOS = "videos.parquet"
CARD = "README.md"
SHARD_CLIPS = 50_000
# the clips shards' columns; a segments plan adds ``segment`` (the clip's segment in its video, the
# seed notes' segment -> video map). One schema per dataset: a change rewrites every shard.
CLIP_COLUMNS = ["video_id", "clip_index", "start_s", "end_s", "embedding"]


def clip_columns(sampling_plan: dict) -> list[str]:
    if segmented(sampling_plan.get("mode", "fps")):
        return [*CLIP_COLUMNS[:2], "segment", *CLIP_COLUMNS[2:]]
    return list(CLIP_COLUMNS)


def plan_description(plan: dict) -> str:
    """The stored plan in words (``2 fps``, ``5 s x 20 frames segments`` ...); its mode's name
    where the stored fields do not make a plan of this version."""
    try:
        return SamplingPlan.from_dict(plan).describe()
    except (TypeError, ValueError):
        return str(plan.get("mode", "fps"))
