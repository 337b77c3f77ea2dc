"""Per-video data checks, run on what was just written (the Dagster asset checks call these)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import zarr

from vid_assets.clips.build import count_clips
from vid_assets.media.plan import SamplingPlan
from vid_assets.store.features import FeatureStore


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    detail: str


def expected_clips(duration_s: float, plan: SamplingPlan, frames_per_clip: int, stride: int) -> tuple[int, int] | None:
    """Range of clip counts a video of ``duration_s`` should give (None when not predictable)."""
    samples = plan.sample_range(duration_s)
    if samples is None:
        return None
    return tuple(count_clips(n, frames_per_clip, stride, plan.samples_per_segment) for n in samples)


def validate_video(group: zarr.Group) -> list[CheckOutcome]:
    """The checks on a video read back from the store (a retry restating what an earlier attempt stored)."""
    return validate_arrays(dict(group.attrs), FeatureStore.features(group), group["timestamps"][...])


def validate_arrays(attrs: dict, feats: np.ndarray, ts: np.ndarray) -> list[CheckOutcome]:
    """The checks on a video's attributes, features (as stored: float16 overflows show as inf)
    and clip timestamps."""
    out = []
    bad = int(np.size(feats) - np.isfinite(feats).sum())
    out.append(CheckOutcome("features_finite", bad == 0, f"{bad} non-finite values" if bad else "all finite"))
    declared = attrs.get("feature_shape")
    cfg = attrs.get("extractor_config") or {}
    dim = cfg.get("dim")
    # one image's output: a vector of dim, or (per-frame extractors) T frames of feature_shape each
    want = [dim] if dim is not None else None
    if cfg.get("per_frame"):
        want = [int((attrs.get("clip_spec") or {}).get("frames_per_clip", 1)), *cfg.get("feature_shape", [dim])]
    shape_ok = list(feats.shape) == list(declared or []) and (want is None or list(feats.shape[2:]) == want)
    out.append(
        CheckOutcome(
            "shape_as_declared", shape_ok, f"features {list(feats.shape)}, declared {declared}, per image {want}"
        )
    )
    starts = ts[:, 0] if len(ts) else ts
    inc = bool(len(ts) == 0 or (np.all(np.diff(starts) > 0) and np.all(ts[:, 1] > ts[:, 0])))
    out.append(CheckOutcome("timestamps_increasing", inc, "strictly increasing" if inc else "not strictly increasing"))
    plan_d, spec = attrs.get("sampling_plan"), attrs.get("clip_spec") or {}
    rng = None
    if plan_d:
        try:
            rng = expected_clips(
                float(attrs.get("duration_s", float("nan"))),
                SamplingPlan.from_dict(plan_d),
                int(spec.get("frames_per_clip", 1)),
                int(spec.get("stride", 1)),
            )
        except (TypeError, ValueError):
            rng = None
    n = len(feats)
    if rng is None:
        out.append(CheckOutcome("clip_count_consistent", True, f"{n} clips (no expectation for this plan)"))
    else:
        ok = rng[0] <= n <= rng[1]
        out.append(
            CheckOutcome("clip_count_consistent", ok, f"{n} clips, expected {rng[0]}-{rng[1]} from duration and plan")
        )
    return out
