"""The two extensions docs/ARCHITECTURE.md walks through, done exactly as written there: a sampling
mode and a model family, each defined here and run end to end through ``vid_assets.extract`` (the
engine every door runs) into a real feature store."""

from __future__ import annotations

import av
import pytest
import torch

import vid_assets
from vid_assets.extractors import Extractor, InputSpec, register_prefix
from vid_assets.extractors.registry import _PREFIXES, list_prefixes
from vid_assets.media.modes import MODES, Mode, Target, register_mode
from vid_assets.media.plan import SamplingPlan
from vid_assets.store import FeatureStore


# -- a sampling mode: one frame from the middle of each video (a thumbnail) ------------------------
class Middle(Mode):
    """A time mode: one target, halfway through the (trimmed) video."""

    name, uses_targets = "middle", True

    def targets(self, plan, start, end):
        return [Target((start + end) / 2)]

    def describe(self, plan):
        return "the middle frame"


@pytest.fixture
def middle_mode():
    register_mode(Middle())
    yield
    MODES.pop("middle")


def test_a_new_sampling_mode_runs_through_the_engine_into_the_store(middle_mode, media_dir, tmp_path):
    clip = media_dir / "clip_a.mp4"  # 3 s at 24 fps
    plan = SamplingPlan(mode="middle")
    assert plan.describe() == "the middle frame" and plan.to_dict()["mode"] == "middle"
    assert [t.time_s for t in plan.targets(3.0)] == [1.5] and plan.expected_frames(3.0) == 1
    summary = vid_assets.extract([str(clip)], out=tmp_path / "store", device="cpu", mode="middle", frames_per_clip=1)
    assert summary["done"] == 1 and summary["failed"] == []
    store = FeatureStore(tmp_path / "store")
    (key,) = store.list_videos()
    video = store.read_video(key)
    with av.open(str(clip)) as c:  # the frame nearest 1.5 s, by its own timestamp
        s = c.streams.video[0]
        pts = sorted(float(f.pts * s.time_base) for f in c.decode(s))
    nearest = min(pts, key=lambda t: (abs(t - 1.5), -t))
    assert video.num_clips == 1 and video.frame_times[0, 0] == pytest.approx(nearest)
    assert video.attrs["sampling_plan"]["mode"] == "middle"
    assert all(c.passed for c in store.check(key))  # the stored video's checks know the mode's count


def test_an_unknown_mode_names_the_known_ones():
    with pytest.raises(ValueError, match="fps.*every_n.*segments.*keyframes"):
        SamplingPlan(mode="middle")


# -- a model family: ``tinyfam:<dim>``, a random conv net with <dim> features ----------------------
def _tiny_spec(rest: str) -> InputSpec:
    return InputSpec(kind="frame", size=32, resize=36)


def tiny_family(rest: str, device: str = "cpu", **kwargs) -> Extractor:
    """The whole family: a factory from the name's rest to an :class:`Extractor`."""
    dim = int(rest)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, dim, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    return Extractor(f"tinyfam:{rest}", f"tinyfam/{dim}@test", net, input_size=32, mean=mean, std=std, dim=dim,
                     device=device, resize_size=36, **kwargs)  # fmt: skip


@pytest.fixture
def tiny_family_registered():
    register_prefix("tinyfam", spec=_tiny_spec)(tiny_family)
    yield
    _PREFIXES.pop("tinyfam")


def test_a_new_model_family_runs_through_the_engine_into_the_store(tiny_family_registered, media_dir, tmp_path):
    assert "tinyfam" in list_prefixes()
    assert vid_assets.extractors.input_spec("tinyfam:8").size == 32  # fitted without building it
    summary = vid_assets.extract(
        [str(media_dir / "clip_a.mp4"), str(media_dir / "clip_b.mp4")],
        out=tmp_path / "store",
        extractor="tinyfam:8",
        device="cpu",
        fps=2,
    )
    assert summary["done"] == 2 and summary["failed"] == []
    store = FeatureStore(tmp_path / "store")
    for key in store.list_videos():
        video = store.read_video(key)
        assert video.features.shape[1:] == (1, 8) and video.attrs["extractor"] == "tinyfam/8@test"
        assert video.attrs["clip_spec"]["crop_size"] == 32 and video.attrs["sampling_plan"]["short_side"] == 36
        assert all(c.passed for c in store.check(key))
