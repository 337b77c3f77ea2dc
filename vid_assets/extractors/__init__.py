"""Feature extractors: a timm-style registry of thin factory functions.

``create_extractor("efficientnet_lite0")`` builds the offline default; ``get_extractor`` returns a
per-process cached instance so a model is loaded once and reused across partitions and requests.
"""

from vid_assets.extractors import efficientnet as _efficientnet  # noqa: F401  (registers factories)
from vid_assets.extractors.base import ClipFeatures, Extractor, embed_clips, resolve_device
from vid_assets.extractors.registry import (
    DEFAULT_EXTRACTOR,
    create_extractor,
    get_extractor,
    list_extractors,
    register_extractor,
)

__all__ = [
    "DEFAULT_EXTRACTOR",
    "ClipFeatures",
    "Extractor",
    "create_extractor",
    "embed_clips",
    "get_extractor",
    "list_extractors",
    "register_extractor",
    "resolve_device",
]
