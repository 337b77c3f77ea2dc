"""Group sampled frames into clips and crop them (uint8, on the CPU)."""

from vid_assets.clips.build import Clip, ClipSpec, center_crop, iter_clips

__all__ = ["Clip", "ClipSpec", "center_crop", "iter_clips"]
