"""CUDA-only checks of the asynchronous paths: queued passes, side-stream uploads, fp16 conversion.

CI has no GPU, so these skip there; a lent GPU host runs them without the suite's conftest (no
Dagster there): ``python3 -m pytest -q --noconftest vid_assets_tests/test_cuda.py``
(``benchmarks/gpu_session.sh cuda``). A missing wait between streams shows up here as features
that differ between the queued and the one-at-a-time paths, or as a wrong upload.
"""

import numpy as np
import pytest
import torch

from vid_assets.clips import ClipSpec
from vid_assets.clips.device import clips_from_yuv
from vid_assets.clips.stream import iter_clip_batches
from vid_assets.extractors import create_extractor, embed_clips, iter_pipelined, submit_clips
from vid_assets.media.plan import SamplingPlan
from vid_assets.runtime.transfer import upload
from vid_assets.samples import write_synthetic_video

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cuda_videos")
    paths = [folder / f"v{i}.mp4" for i in range(3)]
    for i, p in enumerate(paths):
        write_synthetic_video(p, seconds=4, fps=30, size=(320, 240), seed=i)
    return [str(p) for p in paths]


def test_side_stream_uploads_arrive_before_use():
    """Many pinned uploads each consumed at once by a kernel on the compute stream."""
    dev = torch.device("cuda")
    rng = np.random.default_rng(0)
    hosts = [
        torch.from_numpy(rng.integers(0, 255, size=(64, 224, 224, 3), dtype=np.uint8)).pin_memory() for _ in range(12)
    ]
    sums = [upload(h, dev).sum(dtype=torch.int64) for h in hosts]  # queued back to back
    assert [int(s) for s in sums] == [int(h.sum(dtype=torch.int64)) for h in hosts]


@pytest.mark.parametrize("device_convert", [False, True])
def test_queued_batches_equal_one_at_a_time(videos, device_convert):
    ext = create_extractor("timm:resnet18", pretrained=False, device="cuda", batch_size=64)
    plan, spec = SamplingPlan(fps=15, short_side=256), ClipSpec(frames_per_clip=1, stride=1, crop_size=224)

    def batches():
        for b in iter_clip_batches(
            videos, plan, spec, batch_clips=40, num_workers=2, pin_memory=True, device_convert=device_convert
        ):
            assert b.error is None
            pixels = (
                clips_from_yuv(b.pixels, b.color, spec, plan.short_side, device="cuda") if device_convert else b.pixels
            )
            yield (b.video, b.first_clip), pixels

    queued = {
        key: p.result().features for (key, _), p in iter_pipelined(batches(), lambda it: submit_clips(ext, it[1]), 2)
    }
    one_by_one = {key: embed_clips(ext, pixels).features for key, pixels in batches()}
    assert queued.keys() == one_by_one.keys() and len(queued) >= 6
    for key, feats in one_by_one.items():
        np.testing.assert_allclose(queued[key], feats, rtol=1e-3, atol=1e-3)


def test_fp16_device_conversion_is_within_a_level_of_the_cpu(videos):
    plan, spec = SamplingPlan(fps=10, short_side=256), ClipSpec(crop="ten", crop_size=224)
    b = next(iter_clip_batches(videos[:1], plan, spec, batch_clips=16, num_workers=0, device_convert=True))
    cpu = clips_from_yuv(b.pixels, b.color, spec, plan.short_side, device="cpu").numpy().astype(int)
    gpu = clips_from_yuv(b.pixels, b.color, spec, plan.short_side, device="cuda").cpu().numpy().astype(int)
    diff = np.abs(gpu - cpu)
    assert diff.max() <= 2 and diff.mean() < 0.3, (diff.max(), diff.mean())


def test_compiled_extractor_probes_eagerly_and_compiles_once():
    """The memory probe runs the eager module; the runs after it use one compiled graph."""
    import torch._dynamo

    from vid_assets.extractors.loading import probe_batch_size

    torch._dynamo.reset()
    ext = create_extractor("timm:resnet18", pretrained=False, device="cuda", compile=True)
    ext.batch_size = probe_batch_size(ext, cap=64)
    assert ext.batch_size == 64
    frames = np.random.default_rng(1).integers(0, 255, size=(100, 224, 224, 3), dtype=np.uint8)
    with torch._dynamo.config.patch(error_on_recompile=True):  # 64 + a padded tail of 36
        feats = ext.embed_frames(frames)[0]
    assert feats.shape == (100, 512) and np.isfinite(feats).all()


def test_auto_with_one_gpu_takes_it_without_claiming(tmp_path, monkeypatch):
    from vid_assets.extractors import resolve_device

    if torch.cuda.device_count() != 1:
        pytest.skip("the one-GPU case")
    monkeypatch.setenv("VID_ASSETS_DEVICE_LOCKS", str(tmp_path / "locks"))
    assert resolve_device("auto") == torch.device("cuda")
    assert not (tmp_path / "locks").exists()


CLAIM = """
import sys, torch
from vid_assets.extractors import create_extractor
ex = create_extractor("efficientnet_lite0", device="auto")
feats = ex.embed_frames(torch.full((4, 224, 224, 3), 100, dtype=torch.uint8))[0]
print(ex.device.index, torch.cuda.current_device(), float(feats.sum()), flush=True)
sys.stdin.readline()
"""


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_two_processes_on_a_multi_gpu_host_use_different_gpus_with_equal_results(tmp_path):
    import subprocess
    import sys

    env = {**__import__("os").environ, "VID_ASSETS_DEVICE_LOCKS": str(tmp_path)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIM], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        for _ in range(2)
    ]
    try:
        rows = [p.stdout.readline().split() for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()
    assert sorted(int(r[0]) for r in rows) == [0, 1]
    assert all(r[0] == r[1] for r in rows)  # each made its GPU the current device
    assert float(rows[0][2]) == pytest.approx(float(rows[1][2]), rel=1e-3)


@pytest.mark.parametrize("crop", ["center", "ten", "random"])
def test_cuda_resampling_matrices_match_interpolation(videos, crop):
    """CUDA's default conversion (matmul) against whole-frame interpolation on the same device."""
    plan, spec = SamplingPlan(fps=10, short_side=256), ClipSpec(crop=crop, crop_size=224, seed=2)
    b = next(iter_clip_batches(videos[:1], plan, spec, batch_clips=16, num_workers=0, device_convert=True))
    ref = clips_from_yuv(b.pixels, b.color, spec, 256, device="cpu", method="interpolate").numpy().astype(int)
    for dtype, most, mean in ((torch.float32, 1, 0.001), (torch.float16, 2, 0.3)):  # fp16: as the old path
        got = clips_from_yuv(b.pixels, b.color, spec, 256, device="cuda", dtype=dtype, method="matmul")
        diff = np.abs(got.cpu().numpy().astype(int) - ref)
        assert diff.max() <= most and diff.mean() < mean, (dtype, diff.max(), diff.mean())
    auto = clips_from_yuv(b.pixels, b.color, spec, 256, device="cuda")
    assert torch.equal(auto, clips_from_yuv(b.pixels, b.color, spec, 256, device="cuda", method="matmul"))


def test_cuda_random_crops_per_segment_follow_the_batches_crop_keys(videos):
    """A segments plan's random box is drawn per segment: the batch carries each clip's key to the
    device, and CUDA's matmul crops land where the CPU's interpolated ones do."""
    plan = SamplingPlan.segments(1.0, 4, max_segments=3, short_side=256)
    spec = ClipSpec(frames_per_clip=2, crop="random", crop_size=224, seed=3)
    b = next(iter_clip_batches(videos[:1], plan, spec, batch_clips=16, num_workers=0, device_convert=True))
    assert b.crop_keys.tolist() == [0, 0, 2, 2, 3, 3]  # 4 one-second segments, 3 spread: 0, 2, 3
    ref = clips_from_yuv(b.pixels, b.color, spec, 256, crop_keys=b.crop_keys, device="cpu", method="interpolate")
    got = clips_from_yuv(
        b.pixels, b.color, spec, 256, crop_keys=b.crop_keys, device="cuda", dtype=torch.float32, method="matmul"
    )
    assert np.abs(got.cpu().numpy().astype(int) - ref.numpy().astype(int)).max() <= 1


@pytest.mark.parametrize("method", ["matmul", "interpolate"])
@pytest.mark.parametrize("crop", ["center", "random"])
def test_queuing_a_batch_never_waits_for_the_device(videos, method, crop):
    """Converting a YUV batch, queuing its passes and reading an earlier batch's features and
    logits must not synchronise with the device (reading waits on that batch's event only). A
    blocking copy (a pageable tensor moved with ``.to(device)``) waits for every pass queued before
    it, so the device idles while the host launches the next batch: the colour matrix (interpolate
    path), the random crop indices (new every batch) and the features moved back to the device for
    the head's logits were such copies. CUDA's sync debug mode turns any wait into an error; the
    first batch builds the cached matrices first."""
    ext = create_extractor("timm:resnet18", pretrained=False, device="cuda", batch_size=64)
    plan = SamplingPlan(fps=15, short_side=256)
    spec = ClipSpec(frames_per_clip=1, stride=1, crop_size=224, crop=crop, seed=3)
    batches = list(
        iter_clip_batches(videos[:1], plan, spec, batch_clips=16, num_workers=0, pin_memory=True, device_convert=True)
    )

    def queue(b):
        clips = clips_from_yuv(
            b.pixels, b.color, spec, plan.short_side, crop_keys=b.crop_keys, device="cuda", method=method
        )
        return submit_clips(ext, clips)

    queue(batches[0]).result()
    torch.cuda.set_sync_debug_mode("error")
    try:
        pending = [queue(b) for b in batches[1:4]]
        results = [pending[0].result(), pending[1].result()]  # batch 3 still queued behind them
    finally:
        torch.cuda.set_sync_debug_mode(0)
    results.append(pending[2].result())
    assert all(np.isfinite(r.features).all() and r.logits.shape[-1] == 1000 for r in results)
