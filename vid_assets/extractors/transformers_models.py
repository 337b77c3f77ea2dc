"""``transformers:<repo or folder>``: the image tower of a Hugging Face transformers checkpoint
with an image-text head (CLIP, SigLIP: ``vision_model`` + ``get_image_features``).

Why beside timm's CLIP towers: a caption and a clip are only comparable when both towers come
from one checkpoint. timm ships image towers only, so its CLIP features pair with text from a
second copy of the weights in another format. A transformers checkpoint holds both towers; the
same repo or folder named as the ``text_model`` (sentence-transformers loads a transformers
CLIP/SigLIP folder as a text + image model) embeds captions into the same space.

Frames are resized by their short side and centre-cropped at the processor's sizes, with its mean
and std (CLIP's processor resamples bicubic, ours bilinear with antialiasing; SigLIP's squashes
the whole frame to a square where we crop).
"""

from __future__ import annotations

from pathlib import Path

import torch

from vid_assets.extractors._hub import hub_hint, load_error, pinned_revision, weights_digest
from vid_assets.extractors.base import Extractor
from vid_assets.extractors.registry import register_prefix
from vid_assets.extractors.spec import InputSpec

_EXTRACTOR_KEYS = {"device", "batch_size", "precision", "compile", "output"}


class VisionPooled(torch.nn.Module):
    """The vision tower's pooled output (CLIP: the class token after its last norm; SigLIP: its
    attention pool), before any projection."""

    def __init__(self, vision_model: torch.nn.Module) -> None:
        super().__init__()
        self.vision_model = vision_model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vision_model(pixel_values=x).pooler_output


def _source(ref: str) -> tuple[str, str | None, bool]:
    """(local folder or repo id, revision, is_local) of ``<folder>`` or ``<org>/<name>[@rev]``."""
    folder = Path(ref).expanduser()
    if folder.is_dir():
        return str(folder.resolve()), None, True
    repo, _, revision = ref.partition("@")
    return repo, revision or None, False


def _processor_config(ref: str) -> dict:
    """The checkpoint's image processor settings (``preprocessor_config.json``, or the image part
    of ``processor_config.json``), read by transformers itself."""
    from transformers import AutoImageProcessor

    src, revision, _ = _source(ref)
    return AutoImageProcessor.from_pretrained(src, revision=revision).to_dict()


def _sizes(cfg: dict) -> tuple[int, int]:
    """(crop, resize short side) from an image processor config."""
    size = cfg.get("size", 224)
    size = size if isinstance(size, int) else size.get("shortest_edge") or size.get("height")
    crop = cfg.get("crop_size", size) if cfg.get("do_center_crop", True) else size
    crop = crop if isinstance(crop, int) else crop.get("height")
    return int(crop), int(size)


def _spec(ref: str, **kwargs) -> InputSpec | None:
    if kwargs:  # arguments may change the input: building answers for them
        return None
    crop, resize = _sizes(_processor_config(ref))
    return InputSpec("frame", 1, crop, resize)


def _weights_id(src: str, revision: str | None, local: bool) -> str:
    """A folder's weights digest, or the commit of the cached snapshot a repo loads from."""
    return weights_digest(Path(src)) if local else pinned_revision(src, revision)


@register_prefix("transformers", spec=_spec, spec_imports=("transformers",))
def transformers_image_tower(ref: str, output: str = "auto", **kwargs) -> Extractor:
    """``transformers:<org>/<name>[@revision]`` (offline: from the HF cache) or
    ``transformers:<folder>``. ``output="auto"``: the projected image embedding where the model
    has a projection (CLIP: comparable with its text tower's), else the pooled one (SigLIP's
    pooled output is its embedding)."""
    import transformers

    ext_kw = {k: v for k, v in kwargs.items() if k in _EXTRACTOR_KEYS}
    model_kw = {k: v for k, v in kwargs.items() if k not in _EXTRACTOR_KEYS}
    src, revision, local = _source(ref)
    try:
        model = transformers.AutoModel.from_pretrained(src, revision=revision, **model_kw).eval()
        cfg = _processor_config(ref)
    except Exception as e:  # not cached offline, not a transformers repo, ...
        raise load_error(
            f"transformers:{ref}", e, hub_hint(src, model_kw.get("cache_dir"), "transformers:<folder>")
        ) from e
    if not hasattr(model, "vision_model") or not hasattr(model, "get_image_features"):
        raise ValueError(
            f"transformers:{ref} is a {type(model).__name__}, not an image-text model with a vision tower "
            "(CLIPModel, SiglipModel, ...)"
        )
    projection = getattr(model, "visual_projection", None)
    if output == "auto":
        output = "head" if projection is not None else "pooled"
    crop, resize = _sizes(cfg)
    name = f"transformers:{Path(src).name if local else src}"
    return Extractor(
        name=name,
        id=f"{name}@{_weights_id(src, revision, local)}",
        model=VisionPooled(model.vision_model),
        head=projection if output == "head" else None,  # a projection, not a classifier: no labels
        input_size=crop,
        resize_size=resize,
        mean=tuple(float(v) for v in cfg.get("image_mean", (0.5, 0.5, 0.5))),
        std=tuple(float(v) for v in cfg.get("image_std", (0.5, 0.5, 0.5))),
        dim=int(model.config.vision_config.hidden_size),
        output=output,
        config={"architecture": type(model).__name__, "transformers": transformers.__version__},
        **ext_kw,
    )
