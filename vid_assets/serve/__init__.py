"""Prediction service: per-clip results for uploaded, pulled or live video, as Server-Sent Events.

``predict`` and ``batcher`` are plain Python (usable without a web server); ``app`` is the
Starlette/uvicorn layer. Started with ``vid-assets serve``.
"""

from vid_assets.serve.batcher import ClipResult, DynamicBatcher
from vid_assets.serve.pipe import BytePipe
from vid_assets.serve.predict import Limits, PredictionError, Predictor, expected_clips

__all__ = ["BytePipe", "ClipResult", "DynamicBatcher", "Limits", "PredictionError", "Predictor", "expected_clips"]
