import numpy as np
import pytest

from vid_assets.clips import ClipSpec, center_crop, count_clips, crop_boxes, iter_clips
from vid_assets.media import DecodedFrame


def _frames(n: int, step: float = 0.5, size=(40, 60)):
    for i in range(n):
        img = np.full((*size, 3), i, dtype=np.uint8)
        yield DecodedFrame(index=i, pts_s=i * step, image=img)


def test_non_overlapping_clips_with_padded_tail():
    clips = list(iter_clips(_frames(5), ClipSpec(frames_per_clip=2, stride=2, crop_size=32), step_s=0.5))
    assert [c.index for c in clips] == [0, 1, 2]
    assert [(c.start_s, c.end_s) for c in clips] == [(0.0, 1.0), (1.0, 2.0), (2.0, 2.5)]
    assert clips[0].pixels.shape == (2, 1, 32, 32, 3) and clips[0].pixels.dtype == np.uint8
    # frame identity is preserved; the tail repeats its last frame
    assert [int(c.pixels[t, 0, 0, 0, 0]) for c in clips for t in range(2)] == [0, 1, 2, 3, 4, 4]
    np.testing.assert_array_equal(clips[2].frame_times, [2.0, 2.0])


def test_overlapping_stride():
    clips = list(iter_clips(_frames(6), ClipSpec(frames_per_clip=4, stride=2, crop_size=32), step_s=0.5))
    firsts = [[int(c.pixels[t, 0, 0, 0, 0]) for t in range(4)] for c in clips]
    assert firsts == [[0, 1, 2, 3], [2, 3, 4, 5]]  # no tail: frames 4,5 are already covered


def test_stride_larger_than_clip_skips_frames():
    clips = list(iter_clips(_frames(7), ClipSpec(frames_per_clip=1, stride=3, crop_size=32), step_s=0.5))
    assert [c.start_s for c in clips] == [0.0, 1.5, 3.0]


def test_short_video_gives_one_padded_clip():
    clips = list(iter_clips(_frames(1), ClipSpec(frames_per_clip=4, stride=4, crop_size=32), step_s=1.0))
    assert len(clips) == 1 and clips[0].pixels.shape[0] == 4


def test_center_crop_and_pad():
    img = np.arange(6 * 10 * 3, dtype=np.uint8).reshape(6, 10, 3)
    np.testing.assert_array_equal(center_crop(img, 4), img[1:5, 3:7])
    assert center_crop(img, 8).shape == (8, 8, 3)


def test_unknown_crop_mode_is_rejected():
    with pytest.raises(ValueError, match="unsupported crop mode"):
        ClipSpec(crop="eleven")


def _segment_frames(segments: dict[int, list[float]], size=(40, 60)):
    """Frames of a segments plan: ``{segment index: [pts, ...]}``, pixel value = running frame number."""
    i = 0
    for seg, times in segments.items():
        for t in times:
            yield DecodedFrame(index=i, pts_s=t, image=np.full((*size, 3), i, dtype=np.uint8), segment=seg)
            i += 1


def test_clips_never_cross_a_segment():
    """Segments 0 and 7 lie far apart (``max_segments`` spreads them); clips of 3 over segments of
    4 frames used to take frames 3, 4, 5 from both. Each segment is cut on its own, with its own tail."""
    frames = _segment_frames({0: [0.0, 0.25, 0.5, 0.75], 7: [7.0, 7.25, 7.5, 7.75]})
    clips = list(iter_clips(frames, ClipSpec(frames_per_clip=3, stride=3, crop_size=32), step_s=0.25))
    assert [[int(c.pixels[t, 0, 0, 0, 0]) for t in range(3)] for c in clips] == [
        [0, 1, 2],
        [3, 3, 3],  # segment 0's tail, padded with its own last frame
        [4, 5, 6],
        [7, 7, 7],
    ]
    assert [c.index for c in clips] == [0, 1, 2, 3] and [c.segment for c in clips] == [0, 0, 7, 7]
    assert [(c.start_s, c.end_s) for c in clips] == [(0.0, 0.75), (0.75, 1.0), (7.0, 7.75), (7.75, 8.0)]
    assert count_clips(8, 3, 3, frames_per_segment=4) == 4


def test_a_clip_can_be_exactly_one_segment():
    frames = _segment_frames({2: [2.0 + j / 4 for j in range(4)], 5: [5.0 + j / 4 for j in range(4)]})
    clips = list(iter_clips(frames, ClipSpec(frames_per_clip=4, stride=4, crop_size=32), step_s=0.25))
    assert [(c.segment, c.start_s, c.end_s) for c in clips] == [(2, 2.0, 3.0), (5, 5.0, 6.0)]


def test_random_crop_is_drawn_once_per_segment():
    """With a segments plan the random box comes from (seed, segment): the clips of one segment share
    it, other segments get other boxes, and the same seed gives the same boxes again."""
    size = (120, 160)

    def boxes(seed):
        frames = _segment_frames({0: [0.0, 0.1, 0.2, 0.3], 1: [5.0, 5.1, 5.2, 5.3], 2: [9.0, 9.1, 9.2, 9.3]}, size)
        spec = ClipSpec(frames_per_clip=2, stride=2, crop_size=32, crop="random", seed=seed)
        return [(c.segment, c.crop_key, crop_boxes(*size, spec, c.crop_key)[0]) for c in iter_clips(frames, spec, 0.1)]

    got = boxes(3)
    assert [(seg, key) for seg, key, _ in got] == [(0, 0), (0, 0), (1, 1), (1, 1), (2, 2), (2, 2)]
    per_segment = {seg: {box for s, _, box in got if s == seg} for seg in (0, 1, 2)}
    assert all(len(b) == 1 for b in per_segment.values())  # one box per segment
    assert len(set().union(*per_segment.values())) == 3  # three segments, three boxes
    assert got == boxes(3) and got != boxes(4)


def test_clip_count_matches_what_is_cut():
    """``count_clips`` (progress bars, the clip-count check) agrees with ``iter_clips`` for every
    clip length and stride, gaps (stride > clip) and overlaps included."""
    for n in range(0, 14):
        for k in range(1, 6):
            for stride in range(1, 8):
                got = len(list(iter_clips(_frames(n, size=(4, 4)), ClipSpec(k, stride, crop_size=16), 0.5)))
                assert got == count_clips(n, k, stride), (n, k, stride)
