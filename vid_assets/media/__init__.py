"""Video sources, identities and PyAV decoding."""

from vid_assets.media.catalog import VideoCatalog
from vid_assets.media.decode import DecodedFrame, VideoDecodeError, VideoInfo, iter_frames, probe
from vid_assets.media.plan import SamplingPlan
from vid_assets.media.source import VIDEO_EXTENSIONS, VideoRef, content_hash, partition_key, scan_folder

__all__ = [
    "VIDEO_EXTENSIONS",
    "DecodedFrame",
    "SamplingPlan",
    "VideoCatalog",
    "VideoDecodeError",
    "VideoInfo",
    "VideoRef",
    "content_hash",
    "iter_frames",
    "partition_key",
    "probe",
    "scan_folder",
]
