"""The published repository's layout: its file names, the clips table's columns, the plan's words.

Shared by the plan (what a commit holds), the card (what the repository says about itself) and
the targets (where the files go).
"""

from __future__ import annotations

MANIFEST = "vid_assets_manifest.json"
VIDEOS = "videos.parquet"
CARD = "README.md"
SHARD_CLIPS = 50_000
# the clips shards' columns; a segments plan adds ``segment`` (the clip's segment in its video, the
# seed notes' segment -> video map). One schema per dataset: a change rewrites every shard.
CLIP_COLUMNS = ["video_id", "clip_index", "start_s", "end_s", "embedding"]


def clip_columns(sampling_plan: dict) -> list[str]:
    if sampling_plan.get("mode") == "segments":
        return [*CLIP_COLUMNS[:2], "segment", *CLIP_COLUMNS[2:]]
    return list(CLIP_COLUMNS)


def plan_description(plan: dict) -> str:
    mode = plan.get("mode", "fps")
    if mode == "fps":
        return f"{plan.get('fps', 0):g} fps"
    if mode == "segments":
        return f"{plan.get('segment_s', 0):g} s x {plan.get('frames_per_segment', 0)} frames segments"
    if mode == "every_n":
        return f"every {plan.get('every_n_frames')} frames"
    return mode
