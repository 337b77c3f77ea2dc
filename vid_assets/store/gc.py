"""Give back the disk that crashed runs left: staging folders, trash, intermediates of stored videos."""

from __future__ import annotations

from vid_assets.store.artifacts import ArtifactStore
from vid_assets.store.atomic import collect
from vid_assets.store.features import FeatureStore

INTERMEDIATES = ("frames", "clips", "embeddings")


def collect_garbage(
    work: ArtifactStore, store: FeatureStore, *, keep_intermediates: bool = False, older_than_s: float = 900.0
) -> dict:
    """Remove half-written output (``.staging``) and replaced output (``.trash``) under the work
    folder and the feature store, and, unless intermediates are kept, the intermediates of videos
    already in the store (a run killed between storing a video and deleting them leaves those).

    ``older_than_s`` spares what a live run is writing right now (default 15 minutes); 0 takes all.
    Returns the bytes freed by kind.
    """
    staging = work.collect(older_than_s) + collect(store.root, older_than_s)
    intermediates, videos = 0, set()
    if not keep_intermediates:
        for asset in INTERMEDIATES:
            folder = work.root / asset
            for path in sorted(folder.glob("*.zarr")) if folder.is_dir() else []:
                key = path.name.removesuffix(".zarr")
                if store.has_video(key):
                    intermediates += work.discard(key, (asset,))
                    videos.add(key)
    return {"staging_bytes": staging, "intermediate_bytes": intermediates, "videos_cleaned": len(videos)}
