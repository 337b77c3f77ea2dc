"""vid_assets: turn video collections into training-ready embeddings.

The library layers (media -> clips -> extractors -> store) are plain Python and never import
Dagster; ``vid_assets.defs`` and ``vid_assets.definitions`` wire them into assets.
"""

import atexit
import gc

__version__ = "0.1.0"

# At exit CPython collects every object once more; with torch, timm and Dagster loaded that is
# ~1 s per process (measured: 1.23 -> 0.21 s after a model load), paid by every run, step and CLI
# command. Nothing of ours relies on a collection at exit (writes are published explicitly), so
# the objects alive then are frozen out of that last pass. Registered first, it runs last.
atexit.register(gc.freeze)


def __getattr__(name: str):
    """``vid_assets.extract(...)``: the one-call path (``vid_assets/extraction.py``), imported on use."""
    if name == "extract":
        from vid_assets.extraction import extract

        return extract
    raise AttributeError(f"module 'vid_assets' has no attribute {name!r}")
