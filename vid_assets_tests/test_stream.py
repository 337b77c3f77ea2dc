"""Parallel decode -> clip batches: same clips as the sequential path, errors isolated per video."""

import numpy as np
import pytest

from vid_assets.clips import ClipSpec, iter_clips
from vid_assets.clips.stream import iter_clip_batches
from vid_assets.media import SamplingPlan, iter_frames


@pytest.mark.parametrize(
    ("backend", "workers", "read_ahead"), [("threads", 0, 0), ("threads", 0, 2), ("threads", 2, 0), ("processes", 2, 0)]
)
def test_batches_equal_the_sequential_clips(media_dir, backend, workers, read_ahead):
    plan, spec = SamplingPlan(fps=4.0, short_side=128), ClipSpec(frames_per_clip=2, stride=2, crop_size=112)
    sources = [str(media_dir / "clip_a.mp4"), str(media_dir / "empty.mp4"), str(media_dir / "clip_b.mp4")]
    got: dict[int, list] = {}
    errors = {}
    batches = iter_clip_batches(
        sources, plan, spec, batch_clips=4, num_workers=workers, backend=backend, read_ahead=read_ahead
    )
    for b in batches:
        if b.error:
            errors[b.video] = b.error
            continue
        got.setdefault(b.video, []).append(b)
    assert list(errors) == [1] and "empty file" in errors[1]
    for v in (0, 2):
        expected = list(iter_clips(iter_frames(sources[v], plan), spec, plan.step_s))
        batches = sorted(got[v], key=lambda b: b.first_clip)
        assert [b.last for b in batches] == [False] * (len(batches) - 1) + [True]
        pixels = np.concatenate([b.pixels.numpy() for b in batches])
        stamps = np.concatenate([b.timestamps for b in batches])
        np.testing.assert_array_equal(pixels, np.stack([c.pixels for c in expected]))
        np.testing.assert_allclose(stamps, [(c.start_s, c.end_s) for c in expected])


def test_pipelined_embedding_queues_ahead_and_keeps_order(media_dir):
    """The README's bulk loop: batch i + 1 is submitted before batch i's result is read, and the
    features equal embedding each batch on its own."""
    from vid_assets.clips.device import to_device_clips
    from vid_assets.extractors import embed_clips, get_extractor, iter_pipelined, submit_clips

    ex = get_extractor("efficientnet_lite0", device="cpu")
    plan, spec = SamplingPlan(fps=4.0, short_side=128), ClipSpec(crop_size=112)
    sources = [str(media_dir / "clip_a.mp4"), str(media_dir / "clip_b.mp4")]
    batches = [
        (b, to_device_clips(b, spec, plan.short_side, ex.device))
        for b in iter_clip_batches(sources, plan, spec, batch_clips=2, num_workers=0, device_convert=True)
    ]
    assert len(batches) >= 3
    submitted: list[int] = []

    def submit(item):
        submitted.append(id(item[0]))
        return submit_clips(ex, item[1])

    seen = []
    for i, ((batch, clips), pending) in enumerate(iter_pipelined(batches, submit, depth=1)):
        assert len(submitted) == min(i + 2, len(batches))  # the next batch is already queued
        seen.append(id(batch))
        np.testing.assert_allclose(pending.result().features, embed_clips(ex, clips).features, rtol=1e-5, atol=1e-6)
    assert seen == [id(b) for b, _ in batches]


def test_background_passes_run_beside_the_callers_work_in_order():
    """On the CPU a pass is computed inside ``submit``; with ``background`` it runs in a thread of
    its own, so the caller's work on result i (storing a video) overlaps pass i + 1. Results keep
    their order, a failed submission raises at its ``.result()``, and stopping early ends the
    thread without running what was not yet asked for."""
    import threading
    import time

    from vid_assets.extractors import iter_pipelined

    ran: list[tuple[int, str]] = []

    class Done:
        def __init__(self, item: int) -> None:
            self.item = item

        def result(self) -> int:
            return self.item * 10

    def submit(item: int) -> Done:
        ran.append((item, threading.current_thread().name))
        time.sleep(0.2)  # a pass
        if item == 4:
            raise ValueError("pass 4 failed")
        return Done(item)

    def consume(background: bool) -> tuple[list, float]:
        got, t0 = [], time.perf_counter()
        for _, pending in iter_pipelined(range(6), submit, depth=1, background=background):
            try:
                got.append(pending.result())
            except ValueError as e:
                got.append(str(e))
            time.sleep(0.2)  # storing a video
        return got, time.perf_counter() - t0

    with pytest.raises(ValueError, match="pass 4"):  # inline, a failure raises from the loop itself
        consume(False)
    ran.clear()
    got, overlapped = consume(True)
    assert got == [0, 10, 20, 30, "pass 4 failed", 50]
    assert [i for i, _ in ran] == list(range(6))
    assert all(name.startswith("model-passes") for _, name in ran)
    assert overlapped < 1.9  # 6 x (0.2 + 0.2) s one after the other; ~1.4 s side by side

    ran.clear()
    loop = iter_pipelined(range(100), submit, depth=1, background=True)
    next(loop)
    loop.close()
    assert len(ran) <= 3  # item 0, and at most the two submitted behind it
    assert not [t for t in threading.enumerate() if t.name.startswith("model-passes")]


@pytest.mark.timeout(180)
def test_process_workers_reuse_shared_slots_even_when_videos_fail_midway(media_dir, tmp_path):
    """Worker processes write batches into a few reused shared-memory slots. Videos that break
    off mid-stream abandon a half-filled slot; it must come back, or the workers would stall once
    the slots (workers x prefetch + 2 = 4 here) are gone."""
    from vid_assets.samples import write_synthetic_video

    whole = write_synthetic_video(tmp_path / "whole.mkv", seconds=8, fps=24, seed=3).read_bytes()
    broken = []
    for i in range(6):
        p = tmp_path / f"cut{i}.mkv"
        p.write_bytes(whole[: len(whole) // 2])
        broken.append(str(p))
    sources = [*broken, str(media_dir / "clip_a.mp4")]
    plan, spec = SamplingPlan(fps=4.0, short_side=128), ClipSpec(frames_per_clip=2, stride=2, crop_size=112)
    got = list(iter_clip_batches(sources, plan, spec, batch_clips=64, num_workers=1, backend="processes"))
    errors = {b.video for b in got if b.error}
    assert errors == set(range(6)), [(b.video, b.error) for b in got]
    good = [b for b in got if b.video == 6]
    expected = list(iter_clips(iter_frames(sources[6], plan), spec, plan.step_s))
    np.testing.assert_array_equal(
        np.concatenate([b.pixels.numpy() for b in good]), np.stack([c.pixels for c in expected])
    )


def test_batches_larger_than_a_slot_still_arrive_from_processes(tmp_path):
    """Slots are sized for the clip spec's RGB crops; YUV planes of a larger video do not fit one,
    so those batches travel the DataLoader's own way, unchanged."""
    from vid_assets.samples import write_synthetic_video

    src = str(write_synthetic_video(tmp_path / "wide.mp4", seconds=2, fps=12, size=(640, 480), seed=4))
    plan, spec = SamplingPlan(fps=6.0, short_side=128), ClipSpec(frames_per_clip=1, stride=1, crop_size=64)
    kw = {"batch_clips": 4, "num_workers": 1, "device_convert": True}
    by_process = list(iter_clip_batches([src], plan, spec, backend="processes", **kw))
    by_thread = list(iter_clip_batches([src], plan, spec, backend="threads", **kw))
    assert by_process[0].pixels.shape[1:] == (1, 720, 640)  # 460 KB a frame: over the 12 KB slot share
    assert len(by_process) == len(by_thread) >= 2
    for a, b in zip(by_process, by_thread, strict=True):
        assert a.error is None and a.first_clip == b.first_clip
        np.testing.assert_array_equal(a.pixels.numpy(), b.pixels.numpy())
