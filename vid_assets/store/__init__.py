"""Zarr v3 storage: the feature store (the product) and per-partition intermediate artifacts."""

from vid_assets.store import kept
from vid_assets.store.artifacts import ArtifactStore
from vid_assets.store.atomic import atomic_dir
from vid_assets.store.features import FeatureStore, VideoFeatures
from vid_assets.store.remote import RemoteFeatureStore, open_store
from vid_assets.store.zarr_utils import ArrayAppender, blosc

__all__ = [
    "ArrayAppender",
    "ArtifactStore",
    "FeatureStore",
    "RemoteFeatureStore",
    "VideoFeatures",
    "atomic_dir",
    "blosc",
    "kept",
    "open_store",
]
