"""torchvision image and video models, with weights from torchvision's own weight enums.

Video models (``r3d_18``, ``r2plus1d_18``, ``s3d``, ``mvit_v2_s``, ``swin3d_t``) take clips of
``num_frames`` frames; their classification layer becomes the ``head`` and the pooled features
before it are the embedding. Offline, ``weights=None`` gives random init (speed tests, plumbing);
pretrained weights need torchvision's cache (``$TORCH_HOME``) to hold them already.
"""

from __future__ import annotations

import difflib

import torch

from vid_assets.extractors.base import Extractor
from vid_assets.extractors.registry import register_extractor, register_prefix
from vid_assets.extractors.spec import InputSpec

# name -> (frames per clip the model was trained on, attribute holding the classifier)
VIDEO_MODELS = {
    "r3d_18": (16, "fc"),
    "r2plus1d_18": (16, "fc"),
    "s3d": (16, "classifier"),
    "mvit_v2_s": (16, "head"),
    "swin3d_t": (32, "head"),
}
# the rest of torchvision's video classifiers, reachable as ``tv:<name>``
TV_VIDEO_MODELS = VIDEO_MODELS | {
    "mc3_18": (16, "fc"),
    "mvit_v1_b": (16, "head"),
    "swin3d_s": (32, "head"),
    "swin3d_b": (32, "head"),
}
# (crop, resize short side) of each video model's eval transform, declared so fitting clips to one
# needs no torchvision import (~3 s in each Dagster step); a test holds them to torchvision's own
VIDEO_SIZES = {"r3d_18": (112, 128), "r2plus1d_18": (112, 128), "mc3_18": (112, 128)}  # others: 224, 256


def video_spec(name: str) -> InputSpec:
    return InputSpec("clip", TV_VIDEO_MODELS[name][0], *VIDEO_SIZES.get(name, (224, 256)))


class _Conv1x1Head(torch.nn.Module):
    """s3d's classifier is a 1x1x1 Conv3d; apply it to pooled [N, D] features."""

    def __init__(self, conv: torch.nn.Conv3d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x[:, :, None, None, None]).flatten(1)


def _split_head(model: torch.nn.Module, attr: str) -> tuple[torch.nn.Module, int]:
    """Replace the final classifier layer with Identity; return it (as a head) and the feature dim."""
    holder = getattr(model, attr)
    if isinstance(holder, torch.nn.Sequential):
        last = holder[-1]
        holder[-1] = torch.nn.Identity()
        # s3d: the pooled map is [N, D, t, 1, 1] before the mean over dims; keep the mean
    else:
        last = holder
        setattr(model, attr, torch.nn.Identity())
    if isinstance(last, torch.nn.Conv3d):
        return _Conv1x1Head(last), last.in_channels
    return last, last.in_features


def _weights(name: str, weights):
    from vid_assets.extractors.tv_import import torchvision  # imported when used (tv_import: why so)

    if weights is None:
        return None, "random-init"
    enum = torchvision.models.get_model_weights(name)
    w = enum[weights] if isinstance(weights, str) and weights != "DEFAULT" else enum.DEFAULT
    return w, f"{type(w).__name__}.{w.name}"


def _spec(name: str, kind: str = "frame", num_frames: int = 1) -> InputSpec:
    """From the default weights' eval transforms, as ``_build`` reads them (no weights loaded)."""
    from vid_assets.extractors.tv_import import torchvision

    transforms = torchvision.models.get_model_weights(name).DEFAULT.transforms()
    return InputSpec(kind, num_frames, int(transforms.crop_size[0]), int(transforms.resize_size[0]))


def _tv_spec(name: str, **kwargs) -> InputSpec | None:
    if set(kwargs) - {"weights"}:  # other arguments may change the input: building answers for them
        return None
    if name in TV_VIDEO_MODELS:
        return video_spec(name)
    from vid_assets.extractors.tv_import import torchvision

    tvm = torchvision.models
    if name in tvm.list_models(module=tvm):
        return _spec(name)
    return None  # building it gives the error with close matches


# where an image classifier keeps its last layer, first match wins (resnet: fc, vit: heads ...)
HEAD_ATTRS = ("fc", "classifier", "heads", "head")


def _build(name: str, weights, kind: str, num_frames: int, attr: str | None, **kwargs) -> Extractor:
    """``attr``: the classifier's attribute, or None to take the first of ``HEAD_ATTRS`` the model
    has (read from the one model built: building a ResNet-50 takes ~0.45 s on the 2-core VM)."""
    from vid_assets.extractors.tv_import import torchvision

    get_model, get_model_weights = torchvision.models.get_model, torchvision.models.get_model_weights
    w, rev = _weights(name, weights)
    try:
        model = get_model(name, weights=w)
    except Exception as e:
        raise RuntimeError(
            f"could not load torchvision {name} weights {rev}: {e}. Offline, pretrained weights must "
            "already be in $TORCH_HOME; use weights=None for random init."
        ) from e
    attr = attr or next(a for a in HEAD_ATTRS if hasattr(model, a))
    enum_default = get_model_weights(name).DEFAULT
    transforms = enum_default.transforms()
    spec = _spec(name, kind, num_frames)
    head, dim = _split_head(model, attr)
    categories = enum_default.meta.get("categories")
    label_set = ("kinetics-400" if kind == "clip" else "imagenet-1k") if categories else None
    return Extractor(
        name=name,
        id=f"torchvision/{name}@{rev}",
        model=model,
        head=head,
        input_size=spec.size,
        resize_size=spec.resize,
        mean=tuple(transforms.mean),
        std=tuple(transforms.std),
        dim=dim,
        labels=list(categories) if categories else None,
        label_set=label_set,
        input_kind=kind,
        num_frames=num_frames,
        config={"torchvision": torchvision.__version__},
        **kwargs,
    )


def _register_video(name: str, frames: int, attr: str) -> None:
    def factory(weights="DEFAULT", **kwargs) -> Extractor:
        return _build(name, weights, "clip", frames, attr, **kwargs)

    factory.__doc__ = f"torchvision {name} video model: clips of {frames} frames, Kinetics-400 labels."
    register_extractor(factory, name=name, spec=video_spec(name))


for _name, (_frames, _attr) in VIDEO_MODELS.items():
    _register_video(_name, _frames, _attr)


@register_prefix("tv", spec=_tv_spec, spec_imports=("vid_assets.extractors.tv_import",))
def torchvision_model(name: str, weights="DEFAULT", **kwargs) -> Extractor:
    """``tv:<name>``: a torchvision classifier. Image models (resnet50, convnext_tiny, vit_b_16, ...)
    take frames; video models (``tv:r3d_18`` is ``r3d_18``; also mc3_18, mvit_v1_b, swin3d_s/b)
    take clips of the length they were trained on."""
    from vid_assets.extractors.tv_import import torchvision

    tvm = torchvision.models
    if name in TV_VIDEO_MODELS:
        frames, attr = TV_VIDEO_MODELS[name]
        return _build(name, weights, "clip", frames, attr, **kwargs)
    image = tvm.list_models(module=tvm)  # classification models only (not detection, segmentation...)
    if name not in image:
        close = difflib.get_close_matches(name, image + sorted(TV_VIDEO_MODELS), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr('tv:' + c) for c in close)}?" if close else ""
        other = " It is a torchvision model, but not an image or video classifier." if name in tvm.list_models() else ""
        raise ValueError(
            f"unknown torchvision classifier {name!r}.{other}{hint} "
            "See torchvision.models.list_models(module=torchvision.models)."
        )
    return _build(name, weights, "frame", 1, None, **kwargs)
