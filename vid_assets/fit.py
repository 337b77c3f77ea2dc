"""Fitting a sampling plan and clip spec to a model: the one place that decides it.

Every door (the Dagster resources, ``vid-assets serve``, ``vid-assets extract`` and the
benchmarks) asks :func:`fit_config` with the fields a user may set; a field left at 0 takes the
model's own value from its :class:`~vid_assets.extractors.InputSpec` (read from its config, no
weights). So a new sampling mode or a new model rule is written here once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vid_assets.clips import ClipSpec
from vid_assets.extractors import Extractor, InputSpec
from vid_assets.media import SamplingPlan
from vid_assets.media.modes import MODES


@dataclass(frozen=True)
class PipelineConfig:
    plan: SamplingPlan = field(default_factory=SamplingPlan)
    clip: ClipSpec = field(default_factory=ClipSpec)
    top_k: int = 5


def _spec_of(fit: Extractor | InputSpec) -> InputSpec:
    return fit.input_spec if isinstance(fit, Extractor) else fit


def clip_spec_for(
    fit: Extractor | InputSpec, frames_per_clip: int = 0, stride: int = 0, crop_size: int = 0, **kwargs: Any
) -> ClipSpec:
    """A clip spec that fits a model (an extractor, or its ``input_spec``); ``0`` = fit: crops at
    its input size, clips of its ``num_frames`` for clip models or of 2 frames for frame models,
    starting every clip length (no overlap). A video model fed 2-frame clips would fail every batch."""
    spec = _spec_of(fit)
    frames = frames_per_clip or (spec.num_frames if spec.kind == "clip" else 2)
    return ClipSpec(frames_per_clip=frames, stride=stride or frames, crop_size=crop_size or spec.size, **kwargs)


def short_side_for(fit: Extractor | InputSpec, short_side: int = 0, crop_size: int = 0) -> int:
    """The short side frames are resized to: ``short_side``, or (``0``) the model's own eval resize
    (256 for a 224-px ImageNet model at crop_pct 0.875, 248 for timm's ViT-B/16, 128 for
    torchvision's 112-px video models), never below the crop."""
    spec = _spec_of(fit)
    return short_side or max(spec.resize, crop_size or spec.size)


def fit_config(
    fit: Extractor | InputSpec,
    *,
    mode: str = "fps",
    fps: float = 2.0,
    every_n_frames: int = 1,
    segment_s: float = 5.0,
    frames_per_segment: int = 20,
    max_segments: int = 0,
    start_s: float = 0.0,
    end_s: float = 0.0,
    short_side: int = 0,
    frames_per_clip: int = 0,
    stride: int = 0,
    crop_size: int = 0,
    crop: str = "center",
    crop_reduce: str = "none",
    seed: int = 0,
    top_k: int = 5,
) -> PipelineConfig:
    """The plan and clip spec for any sampling mode, 0-fields fitted to ``fit``.

    In a segments plan a frame model's clip is one whole segment (``frames_per_segment`` frames),
    so each segment gives one row: what seed 003's ``[segments, 20 frames, D]`` needs.
    """
    spec = _spec_of(fit)
    frames = frames_per_clip
    if not frames and getattr(MODES.get(mode), "segmented", False) and spec.kind == "frame":
        frames = frames_per_segment
    clip = clip_spec_for(spec, frames, stride, crop_size, crop=crop, crop_reduce=crop_reduce, seed=seed)
    plan = SamplingPlan(
        mode=mode,
        fps=fps,
        every_n_frames=every_n_frames,
        segment_s=segment_s,
        frames_per_segment=frames_per_segment,
        max_segments=max_segments or None,
        start_s=start_s,
        end_s=end_s or None,
        short_side=short_side_for(spec, short_side, clip.crop_size),
    )
    return PipelineConfig(plan=plan, clip=clip, top_k=top_k)


def config_for(fit: Extractor | InputSpec, fps: float = 2.0, top_k: int = 5, **clip_kwargs: Any) -> PipelineConfig:
    """``fps`` sampling at the model's own resize into clips that fit it (``fit_config``'s
    shorthand for the library's defaults: ``frames_per_clip``, ``stride``, ``crop_size``, ``crop``...)."""
    return fit_config(fit, fps=fps, top_k=top_k, **clip_kwargs)
