"""ONNX Runtime as the CPU forward: the same features as PyTorch, one cached graph per
architecture whatever the weights, and PyTorch wherever it does not apply or fails."""

import warnings

import numpy as np
import pytest
import torch

from vid_assets.extractors import create_extractor

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VID_ASSETS_CACHE", str(tmp_path))
    return tmp_path / "onnx"


def _resnet18(seed: int, runtime: str):
    torch.manual_seed(seed)
    return create_extractor("tv:resnet18", weights=None, device="cpu", batch_size=4, runtime=runtime)


FRAMES = np.random.default_rng(0).integers(0, 256, (7, 120, 160, 3), dtype=np.uint8)  # a short tail pass


def test_onnxruntime_gives_pytorchs_features_from_one_cached_graph_for_any_weights(cache):
    ort = _resnet18(0, "onnxruntime")
    assert ort.config["runtime"] == "onnxruntime"
    assert ort.describe()["runtime"] == "onnxruntime"
    ref = _resnet18(0, "torch")
    assert ref.config["runtime"] == "torch"
    a, b = ort.embed_frames(FRAMES)[0], ref.embed_frames(FRAMES)[0]
    assert a.shape == b.shape == (7, 512)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())

    graphs = list(cache.glob("*.onnx"))
    assert len(graphs) == 1
    assert graphs[0].stat().st_size < 200_000  # the graph only: ResNet-18's weights are 45 MB
    written = graphs[0].stat().st_mtime_ns

    # other weights, same architecture: the cached graph runs them (not the weights it was made with)
    other, other_ref = _resnet18(1, "onnxruntime"), _resnet18(1, "torch")
    c, d = other.embed_frames(FRAMES)[0], other_ref.embed_frames(FRAMES)[0]
    np.testing.assert_allclose(c, d, rtol=1e-4, atol=1e-4 * np.abs(d).max())
    assert np.abs(c - a).max() > 0.1 * np.abs(a).max()
    assert [g.stat().st_mtime_ns for g in cache.glob("*.onnx")] == [written]


def test_a_damaged_cached_graph_is_exported_again(cache):
    _resnet18(0, "onnxruntime")
    (graph,) = cache.glob("*.onnx")
    graph.write_bytes(b"not an onnx graph")
    again = _resnet18(0, "onnxruntime")
    assert again.config["runtime"] == "onnxruntime"
    assert graph.stat().st_size > 1000
    np.testing.assert_allclose(
        again.embed_frames(FRAMES)[0], _resnet18(0, "torch").embed_frames(FRAMES)[0], rtol=1e-4, atol=1e-3
    )


def test_auto_takes_onnxruntime_where_it_applies_and_pytorch_elsewhere_silently(cache, monkeypatch):
    monkeypatch.delenv("VID_ASSETS_RUNTIME", raising=False)  # the default is auto
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # auto falls back without a word
        torch.manual_seed(0)
        assert create_extractor("tv:resnet18", weights=None, device="cpu").config["runtime"] == "onnxruntime"
        bf16 = create_extractor("tv:resnet18", weights=None, device="cpu", precision="bf16", runtime="auto")
        assert bf16.config["runtime"] == "torch"
    monkeypatch.setenv("VID_ASSETS_RUNTIME", "torch")
    assert create_extractor("tv:resnet18", weights=None, device="cpu").config["runtime"] == "torch"


def test_asked_for_where_it_cannot_run_it_warns_and_runs_pytorch(cache):
    with pytest.warns(UserWarning, match="does not apply .*precision bfloat16"):
        ext = create_extractor("tv:resnet18", weights=None, device="cpu", precision="bf16", runtime="onnxruntime")
    assert ext.config["runtime"] == "torch"
    assert ext.embed_frames(FRAMES[:2])[0].shape == (2, 512)
    with pytest.raises(ValueError, match="runtime 'tensorrt'"):
        create_extractor("tv:resnet18", weights=None, device="cpu", runtime="tensorrt")


class _ReadsPixelsInNumpy(torch.nn.Module):
    """Its output depends on the input outside torch: a trace records it as a constant."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(8))

    def forward(self, x):
        corner = torch.from_numpy(x.detach().numpy()[:, 0, 0, :8].copy())
        return corner * self.scale + 0 * x.mean()  # the graph keeps its input


def test_a_graph_that_does_not_compute_what_pytorch_does_is_refused(cache):
    from vid_assets.extractors import Extractor

    ext = Extractor(name="numpy-corner", id="test/numpy-corner", model=_ReadsPixelsInNumpy(), input_size=32, dim=8)
    ext.runtime = "onnxruntime"
    with pytest.warns(UserWarning, match="ONNX Runtime not used .*disagrees with PyTorch"):
        ext._ready()
    assert ext.config["runtime"] == "torch"
    assert not list(cache.glob("*.onnx"))
    frames = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    a, b = ext.embed_frames(frames)[0], ext.embed_frames(frames[::-1].copy())[0]
    np.testing.assert_allclose(a[::-1], b)  # PyTorch: each frame's own pixels, not a traced constant


def test_a_service_runs_the_same_session_without_the_arena(cache):
    """A service's model gives back each pass's buffers (``keep_no_pools``: ORT's arena off, what
    the service's memory test needs), with the same features; batch runs keep the arena."""
    ext = _resnet18(0, "onnxruntime")
    before = ext.embed_frames(FRAMES)[0]
    assert ext._forward.arena
    ext.keep_no_pools()
    assert not ext._forward.arena and ext.config["runtime"] == "onnxruntime"
    np.testing.assert_array_equal(ext.embed_frames(FRAMES)[0], before)
    ref = _resnet18(0, "torch")
    ref.keep_no_pools()  # PyTorch's passes already give their buffers back: nothing to change
    assert ref._forward is ref.model
