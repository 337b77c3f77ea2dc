"""Video sources, identities and PyAV decoding."""

from vid_assets.media.catalog import VideoCatalog
from vid_assets.media.decode import DecodedFrame, DecodeStats, VideoDecodeError, VideoInfo, iter_frames, probe
from vid_assets.media.discovery import scan_folder
from vid_assets.media.identity import VIDEO_EXTENSIONS, VideoRef, content_hash, partition_key
from vid_assets.media.opening import StreamProcessor, open_source, register_stream_processor
from vid_assets.media.plan import SamplingPlan, Target

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
