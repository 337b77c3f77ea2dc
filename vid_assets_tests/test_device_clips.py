"""Device-side colour conversion + crops (clips/device.py) against the CPU (swscale) path, on CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vid_assets.clips import ClipSpec, iter_clips
from vid_assets.clips.device import clips_from_yuv, to_device_clips, yuv420_to_rgb
from vid_assets.clips.stream import iter_clip_batches
from vid_assets.extractors import embed_clips, get_extractor
from vid_assets.media import SamplingPlan, iter_frames
from vid_assets.media.decode import YuvInfo
from vid_assets.samples import remux, write_synthetic_video


def both_paths(path, plan: SamplingPlan, spec: ClipSpec) -> tuple[np.ndarray, np.ndarray, YuvInfo]:
    cpu = np.stack([c.pixels for c in iter_clips(iter_frames(path, plan), spec, plan.step_s)])
    frames = list(iter_frames(path, plan, convert="yuv420p"))
    clips = list(iter_clips(frames, spec, plan.step_s, crop=False))
    planes = torch.from_numpy(np.stack([c.pixels for c in clips]))
    keys = [c.crop_key for c in clips] if plan.mode == "segments" else None  # else numbered from 0
    dev = clips_from_yuv(planes, frames[0].color, spec, plan.short_side, crop_keys=keys).numpy()
    return cpu, dev, frames[0].color


def test_same_size_conversion_matches_swscale_within_two_levels(tmp_path):
    """No resize (short side = frame height): only the colour conversion differs from swscale."""
    video = write_synthetic_video(tmp_path / "v.mp4", seconds=2, fps=12, size=(320, 240), seed=3)
    cpu, dev, color = both_paths(video, SamplingPlan.at_fps(2, short_side=240), ClipSpec(crop="center"))
    assert color == YuvInfo(height=240, width=320)  # untagged H.264: bt601, limited range
    diff = np.abs(dev.astype(int) - cpu.astype(int))
    assert diff.mean() < 1.5 and np.percentile(diff, 99) <= 2


@pytest.mark.parametrize("crop", ["center", "five", "ten", "random"])
def test_crops_and_resize_match_the_cpu_path_on_real_footage(real_video, crop):
    """Same boxes (a wrong box would differ by tens of levels), same flips, same random draw per clip."""
    cpu, dev, _ = both_paths(real_video, SamplingPlan.at_fps(1), ClipSpec(crop=crop, seed=7))
    assert dev.shape == cpu.shape and dev.dtype == np.uint8
    per_crop = np.abs(dev.astype(int) - cpu.astype(int)).mean(axis=(0, 1, 3, 4, 5))
    assert per_crop.max() < 2.5, per_crop


@pytest.mark.parametrize("method", ["interpolate", "matmul"])
def test_random_crops_per_segment_match_the_cpu_path(real_video, method):
    """A segments plan's random crop is drawn per segment on both paths; the batched feed carries
    each clip's crop key to the device, so boxes agree there too."""
    plan, spec = SamplingPlan.segments(2.0, 4, max_segments=2), ClipSpec(frames_per_clip=2, crop="random", seed=5)
    cpu, dev, _ = both_paths(real_video, plan, spec)
    assert len(cpu) == 4 and np.abs(dev.astype(int) - cpu.astype(int)).mean() < 2.5
    (batch,) = [b for b in iter_clip_batches([real_video], plan, spec, batch_clips=8, device_convert=True)]
    keys = [c.crop_key for c in iter_clips(iter_frames(real_video, plan), spec, plan.step_s)]
    first, last = keys[0], keys[-1]
    assert batch.crop_keys.tolist() == keys == [first, first, last, last] and first == 0 < last  # segment indices
    fed = clips_from_yuv(batch.pixels, batch.color, spec, plan.short_side, crop_keys=batch.crop_keys, method=method)
    assert np.abs(fed.numpy().astype(int) - cpu.astype(int)).mean() < 2.5
    # numbered by clip instead (what the device used to do), the boxes move
    wrong = clips_from_yuv(batch.pixels, batch.color, spec, plan.short_side, method=method)
    assert np.abs(wrong.numpy().astype(int) - cpu.astype(int)).mean() > 5


def test_features_from_either_path_agree(real_video):
    extractor = get_extractor("efficientnet_lite0", device="cpu")
    cpu, dev, _ = both_paths(real_video, SamplingPlan.at_fps(1), ClipSpec())
    a = embed_clips(extractor, cpu).features.reshape(len(cpu), -1)
    b = embed_clips(extractor, torch.from_numpy(dev)).features.reshape(len(dev), -1)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cos.mean() > 0.99 and cos.min() > 0.97, cos


def test_levels_and_matrices():
    """Limited-range black/white/grey and a BT.709-encoded colour come back as the same RGB."""

    def planes(y: float, u: float, v: float, h: int = 4, w: int = 4) -> torch.Tensor:
        luma = np.full((h, w), y)
        chroma = np.concatenate([np.full((h // 4, w), u), np.full((h // 4, w), v)])
        return torch.from_numpy(np.round(np.concatenate([luma, chroma])).astype(np.uint8))[None]

    info = YuvInfo(height=4, width=4)
    for y, expected in [(16, 0.0), (235, 255.0), (125.5, 127.5)]:
        rgb = yuv420_to_rgb(planes(y, 128, 128), info)
        assert torch.allclose(rgb, torch.full_like(rgb, expected), atol=0.6)
    # encode an orange with the BT.709 limited-range equations, decode with matrix="bt709"
    r, g, b = 230.0, 120.0, 40.0
    kr, kb = 0.2126, 0.0722
    ey = kr * r + (1 - kr - kb) * g + kb * b
    y = 16 + ey * 219 / 255
    u = 128 + (b - ey) / (2 * (1 - kb)) * 224 / 255
    v = 128 + (r - ey) / (2 * (1 - kr)) * 224 / 255
    out = yuv420_to_rgb(planes(y, u, v), YuvInfo(height=4, width=4, matrix="bt709"))[0, :, 0, 0]
    assert torch.allclose(out, torch.tensor([r, g, b]), atol=1.5), out
    wrong = yuv420_to_rgb(planes(y, u, v), info)[0, :, 0, 0]  # decoding with bt601 visibly shifts it
    assert (wrong - torch.tensor([r, g, b])).abs().max() > 5


def test_rotation_is_applied_after_conversion():
    rng = np.random.default_rng(0)
    raw = torch.from_numpy(rng.integers(16, 235, size=(1, 2, 60 * 3 // 2, 80), dtype=np.uint8))
    spec = ClipSpec(crop_size=32)
    upright = clips_from_yuv(raw, YuvInfo(height=60, width=80), spec, short_side=40)
    turned = clips_from_yuv(raw, YuvInfo(height=60, width=80, rotation=90), spec, short_side=40)
    # reference: the upright frame scaled to 40 x 53, turned a quarter (-> 53 x 40), centre 32 crop
    full = yuv420_to_rgb(raw.reshape(2, 90, 80), YuvInfo(height=60, width=80), size=(40, 53))
    full = torch.rot90(full.clamp(0, 255).round().to(torch.uint8), k=1, dims=(-2, -1))  # [2, 3, 53, 40]
    ref = full[:, :, 10:42, 4:36].permute(0, 2, 3, 1)
    assert upright.shape == turned.shape == (1, 2, 1, 32, 32, 3)
    assert torch.equal(turned[0, :, 0], ref)
    assert not torch.equal(turned, upright)


def test_odd_sizes_and_the_batched_feed(tmp_path):
    """Odd sizes and 4:4:4 go through swscale to even 4:2:0; feed batches convert to the CPU layout."""
    video = write_synthetic_video(tmp_path / "odd.mp4", seconds=3, fps=10, size=(161, 121), seed=4, pix_fmt="yuv444p")
    plan, spec = SamplingPlan.at_fps(2, short_side=128), ClipSpec(crop_size=112, crop="five")
    cpu_batches = list(iter_clip_batches([str(video)], plan, spec, batch_clips=2, num_workers=0))
    dev_batches = list(iter_clip_batches([str(video)], plan, spec, batch_clips=2, num_workers=0, device_convert=True))
    assert [b.first_clip for b in dev_batches] == [b.first_clip for b in cpu_batches]
    for c, d in zip(cpu_batches, dev_batches, strict=True):
        assert d.color is not None and c.color is None
        assert np.array_equal(c.timestamps, d.timestamps)
        converted = to_device_clips(d, spec, plan.short_side, "cpu")
        assert converted.shape == c.pixels.shape
        # 4:4:4 -> 4:2:0 drops chroma detail of this sharp 8-px colour mosaic (~13 levels on
        # average); a misplaced crop on it would differ by ~85 (two unrelated random mosaics)
        assert np.abs(converted.numpy().astype(int) - c.pixels.numpy().astype(int)).mean() < 20


@pytest.mark.parametrize("read_ahead", [0, 2])
def test_portrait_phone_video_same_on_both_paths(tmp_path, read_ahead):
    """A display-rotated file: the CPU feed (inline or read-ahead) and device conversion agree."""
    src = write_synthetic_video(tmp_path / "src.mp4", seconds=2, fps=10, size=(160, 96), seed=6)
    video = str(remux(src, tmp_path / "portrait.mp4", rotation=-90))
    plan, spec = SamplingPlan.at_fps(4, short_side=64), ClipSpec(crop_size=48, crop="five")
    cpu = list(iter_clip_batches([video], plan, spec, batch_clips=4, num_workers=0, read_ahead=read_ahead))
    dev = list(iter_clip_batches([video], plan, spec, batch_clips=4, num_workers=0, device_convert=True))
    assert cpu and len(cpu) == len(dev)
    for c, d in zip(cpu, dev, strict=True):
        assert d.color is not None and d.color.rotation == 270
        converted = to_device_clips(d, spec, plan.short_side, "cpu")
        assert converted.shape == c.pixels.shape
        # the device path converts YUV with its own filter: 1.5 levels apart on average here; the
        # frame turned the wrong way round gives 75
        assert np.abs(converted.numpy().astype(int) - c.pixels.numpy().astype(int)).mean() < 5


@pytest.mark.parametrize("crop", ["center", "five", "ten", "random"])
@pytest.mark.parametrize("rotation", [0, 90])
def test_resampling_matrices_give_the_interpolated_pixels(tmp_path, crop, rotation):
    """CUDA's default (``method="matmul"``: each crop as Rows @ plane @ Cols^T) against resizing whole
    frames then cropping, on decoded planes: same boxes, flips, random draws, rotation and padding."""
    video = write_synthetic_video(tmp_path / "v.mp4", seconds=1, fps=10, size=(320, 240), seed=5)
    frames = list(iter_frames(video, SamplingPlan.at_fps(4), convert="yuv420p"))
    spec = ClipSpec(frames_per_clip=2, stride=2, crop=crop, seed=11)
    planes = torch.from_numpy(np.stack([c.pixels for c in iter_clips(frames, spec, 0.25, crop=False)]))
    info = YuvInfo(height=240, width=320, rotation=rotation)
    for short_side, size in [(256, 224), (240, 224), (100, 112)]:  # enlarge, same size, pad
        spec = ClipSpec(frames_per_clip=2, stride=2, crop=crop, seed=11, crop_size=size)
        ref = clips_from_yuv(planes, info, spec, short_side, first_clip=3, method="interpolate").numpy()
        got = clips_from_yuv(planes, info, spec, short_side, first_clip=3, method="matmul").numpy()
        assert got.shape == ref.shape and got.dtype == np.uint8
        diff = np.abs(got.astype(int) - ref.astype(int))
        assert diff.max() <= 1 and diff.mean() < 0.001, (short_side, diff.max(), diff.mean())
        if rotation == 0 and crop != "ten":  # CUDA's precision (float16 matmuls are slow on the CPU)
            half = clips_from_yuv(planes, info, spec, short_side, first_clip=3, method="matmul", dtype=torch.float16)
            diff16 = np.abs(half.numpy().astype(int) - ref.astype(int))
            assert diff16.max() <= 1 and diff16.mean() < 0.25, (short_side, diff16.max(), diff16.mean())
    with pytest.raises(ValueError, match="method"):
        clips_from_yuv(planes, info, spec, 256, method="bicubic")
