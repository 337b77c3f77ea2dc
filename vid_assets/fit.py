"""Fitting a sampling plan and clip spec to a model: the one place that decides it.

Every door (the Dagster resources, ``vid-assets serve``, ``vid-assets extract`` and the
benchmarks) asks :func:`fit_config` with the fields a user may set; a field left at 0 takes the
model's own value from its :class:`~vid_assets.extractors.InputSpec` (read from its config, no
weights). So a new sampling mode or a new model rule is written here once.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from typing import Any

from vid_assets.clips import ClipSpec
from vid_assets.extractors import Extractor, InputSpec
from vid_assets.media import SamplingPlan
from vid_assets.media.modes import segmented


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


def sampling_fields() -> tuple[str, ...]:
    """Every field :func:`fit_config` takes: the plan's own (a new mode's too) and the clip's."""
    named = [n for n in inspect.signature(fit_config).parameters if n not in ("fit", "plan_fields")]
    return tuple(f.name for f in dataclasses.fields(SamplingPlan) if f.name not in named) + tuple(named)


def fit_config(
    fit: Extractor | InputSpec,
    *,
    short_side: int = 0,
    frames_per_clip: int = 0,
    stride: int = 0,
    crop_size: int = 0,
    crop: str = "center",
    crop_reduce: str = "none",
    seed: int = 0,
    top_k: int = 5,
    **plan_fields: Any,
) -> PipelineConfig:
    """The plan and clip spec for any sampling mode, 0-fields fitted to ``fit``.

    ``plan_fields``: :class:`SamplingPlan`'s own (``mode``, ``fps``, ``every_n_frames``,
    ``segment_s``, ``frames_per_segment``, ``max_segments``, ``start_s``, ``end_s`` and any a new
    mode adds), passed through; ``0`` for ``max_segments`` / ``end_s`` means none (the resource's
    convention). In a segmented plan a frame model's clip is one whole segment (its frames), so
    each segment gives one row: what seed 003's ``[segments, 20 frames, D]`` needs.
    """
    spec = _spec_of(fit)
    for name in ("max_segments", "end_s"):
        if name in plan_fields and not plan_fields[name]:
            plan_fields[name] = None
    frames = frames_per_clip
    if not frames and segmented(plan_fields.get("mode", "fps")) and spec.kind == "frame":
        frames = plan_fields.get("frames_per_segment", SamplingPlan.frames_per_segment)
    clip = clip_spec_for(spec, frames, stride, crop_size, crop=crop, crop_reduce=crop_reduce, seed=seed)
    plan = SamplingPlan(**plan_fields, short_side=short_side_for(spec, short_side, clip.crop_size))
    return PipelineConfig(plan=plan, clip=clip, top_k=top_k)


def config_for(fit: Extractor | InputSpec, fps: float = 2.0, top_k: int = 5, **clip_kwargs: Any) -> PipelineConfig:
    """``fps`` sampling at the model's own resize into clips that fit it (``fit_config``'s
    shorthand for the library's defaults: ``frames_per_clip``, ``stride``, ``crop_size``, ``crop``...)."""
    return fit_config(fit, fps=fps, top_k=top_k, **clip_kwargs)
