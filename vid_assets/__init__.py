"""vid_assets: turn video collections into training-ready embeddings.

The library layers (media -> clips -> extractors -> store) are plain Python and never import
Dagster; ``vid_assets.pipeline`` and ``vid_assets.definitions`` wire them into assets.
"""

__version__ = "0.1.0"
