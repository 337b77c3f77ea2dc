import numpy as np
import pytest

from vid_assets.clips import ClipSpec, center_crop, iter_clips
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
