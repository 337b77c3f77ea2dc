"""Feature extractors: a timm-style registry of thin factory functions.

``create_extractor("efficientnet_lite0")`` builds the offline default; ``get_extractor`` returns a
per-process cached instance so a model is loaded once and reused across partitions and requests.
"""

from vid_assets.extractors import efficientnet as _efficientnet  # noqa: F401  (registers factories)
from vid_assets.extractors import timm_models as _timm_models  # noqa: F401
from vid_assets.extractors import torchvision_models as _torchvision_models  # noqa: F401
from vid_assets.extractors import transformers_models as _transformers_models  # noqa: F401
from vid_assets.extractors import vae_models as _vae_models  # noqa: F401
from vid_assets.extractors.base import Extractor
from vid_assets.extractors.passes import ClipFeatures, PendingClipFeatures, embed_clips, iter_pipelined, submit_clips
from vid_assets.extractors.registry import (
    DEFAULT_EXTRACTOR,
    ENTRY_POINT_GROUP,
    create_extractor,
    get_extractor,
    input_spec,
    list_extractors,
    list_prefixes,
    register_extractor,
    register_prefix,
    spec_imports,
)
from vid_assets.extractors.spec import ExtractorSpec, InputSpec
from vid_assets.runtime.devices import resolve_device

__all__ = [
    "DEFAULT_EXTRACTOR",
    "ENTRY_POINT_GROUP",
    "ClipFeatures",
    "Extractor",
    "ExtractorSpec",
    "InputSpec",
    "PendingClipFeatures",
    "create_extractor",
    "embed_clips",
    "get_extractor",
    "input_spec",
    "iter_pipelined",
    "list_extractors",
    "list_prefixes",
    "register_extractor",
    "register_prefix",
    "resolve_device",
    "spec_imports",
    "submit_clips",
]
