"""What an extractor eats, known without loading its weights: the pipeline fits decoding and
clips to it (``vid_assets/fit.py``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InputSpec:
    """What an extractor eats, known without loading its weights (``registry.input_spec``): the
    pipeline decodes and cuts clips to fit it. ``resize``: the short side its eval transform resizes
    to before the centre crop of ``size`` (timm: ``floor(size / crop_pct)``; torchvision: the
    weights' ``resize_size``)."""

    kind: str = "frame"  # "frame" | "clip"
    num_frames: int = 1
    size: int = 224
    resize: int = 256
