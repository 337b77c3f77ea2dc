"""Group sampled frames into clips and crop them (uint8, on the CPU)."""

from vid_assets.clips.build import (
    CROP_MODES,
    Clip,
    ClipSpec,
    center_crop,
    count_clips,
    crop_boxes,
    crop_frames,
    crop_key,
    iter_clips,
)

__all__ = [
    "CROP_MODES",
    "Clip",
    "ClipSpec",
    "center_crop",
    "count_clips",
    "crop_boxes",
    "crop_frames",
    "crop_key",
    "iter_clips",
]
