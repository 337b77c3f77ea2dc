"""Video sources, identities and PyAV decoding."""

from vid_assets.media.catalog import VideoCatalog
from vid_assets.media.decode import DecodedFrame, DecodeStats, VideoDecodeError, VideoInfo, iter_frames, probe
from vid_assets.media.plan import SamplingPlan, Target
from vid_assets.media.source import VIDEO_EXTENSIONS, VideoRef, content_hash, partition_key, scan_folder
from vid_assets.media.sources import StreamProcessor, open_source, register_stream_processor

__all__ = [
    "VIDEO_EXTENSIONS",
    "DecodeStats",
    "DecodedFrame",
    "SamplingPlan",
    "StreamProcessor",
    "Target",
    "VideoCatalog",
    "VideoDecodeError",
    "VideoInfo",
    "VideoRef",
    "content_hash",
    "iter_frames",
    "open_source",
    "partition_key",
    "probe",
    "register_stream_processor",
    "scan_folder",
]
